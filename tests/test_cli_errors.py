"""Every bad input gives one line naming the problem, exit code 2, and no registry change."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import (
    Result,
    cli_in_process,
    cli_runner,
    registry_state,
    with_registry,
    write_csv,
)


@pytest.fixture(scope="module")
def good_frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 120
    x = rng.normal(size=n)
    return pd.DataFrame(
        {
            "x": x,
            "colour": rng.choice(["red", "blue"], n),
            "day": pd.date_range("2024-01-01", periods=n).strftime("%Y-%m-%d"),
            "y": (x + rng.normal(size=n) > 0).astype(int),
        }
    )


@pytest.fixture(scope="module")
def trained_home(tmp_path_factory: pytest.TempPathFactory, good_frame: pd.DataFrame) -> Path:
    """A registry that already holds one version, so 'unchanged' means something."""
    home = with_registry(tmp_path_factory.mktemp("errors") / "home")
    data = write_csv(home.parent / "good.csv", good_frame)
    done = cli_runner(home)(
        "train", str(data), "--target", "y", "--name", "m", "--model", "logistic", "--folds", "3"
    )
    assert done.code == 0, done.stderr
    return home


@pytest.fixture
def cli(trained_home: Path) -> Callable[..., Result]:
    """The entry point in this process (``cli_in_process``); the first case of the table
    runs as a user runs it, in a subprocess."""
    return cli_in_process(trained_home)


def bad_table(tmp_path: Path, good: pd.DataFrame, case: str) -> tuple[Path, list[str]]:
    """Write the file for one bad-input case; return it and the extra CLI options."""
    path = tmp_path / f"{case}.csv"
    opts: list[str] = []
    if case == "unknown_target":
        write_csv(path, good)
        opts = ["--target", "label"]
    elif case == "one_class":
        write_csv(path, good.assign(y=1))
    elif case == "empty_file":
        path.write_bytes(b"")
    elif case == "header_only":
        path.write_text("x,colour,day,y\n")
    elif case == "unreadable_bytes":
        path.write_bytes(bytes(range(128, 256)) * 50)
    elif case == "not_parquet":
        path = tmp_path / "fake.parquet"
        path.write_text("x,y\n1,2\n")
    elif case == "missing_file":
        path = tmp_path / "nowhere.csv"
    elif case == "wrong_suffix":
        path = tmp_path / "data.xlsx"
        path.write_text("x")
    elif case == "one_row":
        write_csv(path, good.head(1))
    elif case == "all_missing_column":
        write_csv(path, good.assign(gone=np.nan))
    elif case == "mixed_types":
        mixed = good["x"].round(2).astype(object)
        mixed.iloc[::10] = "n/a?"
        write_csv(path, good.assign(x=mixed))
    elif case == "time_not_a_time":
        write_csv(path, good)
        opts = ["--time-column", "colour"]
    elif case == "unknown_id_column":
        write_csv(path, good)
        opts = ["--id-column", "user"]
    elif case == "id_column_is_target":
        write_csv(path, good)
        opts = ["--id-column", "y"]
    elif case == "unknown_model":
        write_csv(path, good)
        opts = ["--model", "xgboost"]
    elif case == "unknown_task":
        write_csv(path, good)
        opts = ["--task", "ranking"]
    elif case == "both_thresholds":
        write_csv(path, good)
        opts = ["--min-precision", "0.9", "--min-recall", "0.9"]
    elif case == "too_few_folds":
        write_csv(path, good)
        opts = ["--folds", "1"]
    elif case == "text_regression_target":
        write_csv(path, good.assign(y=good["colour"]))
        opts = ["--task", "regression"]
    elif case == "rare_class":
        write_csv(path, good.assign(y=[0] * 60 + [1] * 58 + [2] * 2))
    return path, (opts if "--target" in opts else ["--target", "y", *opts])


CASES = {
    "unknown_target": (
        "--target 'label': no such column; expected one of ['x', 'colour', 'day', 'y']"
    ),
    "one_class": "--target 'y': has one class (1 in all 120 rows); expected at least 2 classes",
    "empty_file": "is empty (0 bytes); expected a header and rows",
    "header_only": "has a header but no rows",
    "unreadable_bytes": "cannot be read as csv",
    "not_parquet": "cannot be read as parquet",
    "missing_file": "does not exist",
    "wrong_suffix": "expected a .csv, .tsv or .parquet file, got suffix '.xlsx'",
    "one_row": "data has 1 labelled row; expected at least 10",
    "all_missing_column": "column 'gone': all 120 values are missing",
    "mixed_types": "column 'x': mixes numbers (90% of values) with text ('n/a?')",
    "time_not_a_time": "--time-column 'colour': expected dates or timestamps",
    "unknown_id_column": (
        "--id-column 'user': no such column; expected one of ['x', 'colour', 'day']"
    ),
    "id_column_is_target": "--id-column must differ from --target",
    "unknown_model": "--model: expected one of lightgbm, logistic, random-forest; got 'xgboost'",
    "unknown_task": "--task: expected one of classification, regression; got 'ranking'",
    "both_thresholds": "give --min-precision or --min-recall, not both",
    "too_few_folds": "--folds: Input should be greater than or equal to 2; got 1",
    "text_regression_target": "--target 'y': regression needs numbers",
    "rare_class": "--target 'y': class 2 has 2 rows; expected at least 5 per class",
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_line_exit_2_and_leaves_registry_alone(
    case: str,
    trained_home: Path,
    cli: Callable[..., Result],
    tmp_path: Path,
    good_frame: pd.DataFrame,
) -> None:
    before = registry_state(trained_home)
    path, opts = bad_table(tmp_path, good_frame, case)
    run = cli_runner(trained_home) if case == min(CASES) else cli
    result = run("train", str(path), "--name", "m", *opts)
    lines = result.stderr.strip().splitlines()
    assert result.code == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert CASES[case] in lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert registry_state(trained_home) == before


def test_unknown_model_name_in_models_listing(
    trained_home: Path, cli: Callable[..., Result]
) -> None:
    result = cli("models", "nope")
    assert result.code == 2
    assert result.stderr.strip() == "error: model 'nope': not in the registry; registered: m"


def test_unknown_option_is_a_usage_error(trained_home: Path) -> None:
    result = cli_runner(trained_home)("train", "x.csv", "--target", "y", "--xyzzy", "red")
    assert result.code == 2
    assert result.stderr.strip().splitlines() == ["error: No such option: --xyzzy"]


def test_unknown_watch_part_names_the_choices(cli: Callable[..., Result]) -> None:
    result = cli("watch", "m", "--part", "everything", "--once")
    assert result.code == 2
    assert result.stderr.strip() == (
        "error: --part: expected one of all, monitor, rollouts; got 'everything'"
    )


@pytest.mark.parametrize("value", ["-1", "20"])
def test_a_monitor_nice_out_of_range_names_the_range(
    cli: Callable[..., Result], value: str
) -> None:
    result = cli("watch", "m", "--monitor-nice", value, "--once")
    assert result.code == 2
    assert result.stderr.strip() == f"error: --monitor-nice: expected 0 to 19; got {value}"
