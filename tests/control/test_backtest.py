"""`mlcanary backtest`: a labelled table replayed through the real monitor and controller,
run as a user runs it (the CLI in a subprocess, a real registry and store).

Rates are checked against binomial bounds at 99% (``most_allowed``): a backtest whose
true rate is at most the claimed one fails the check with probability <= 1%.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from mlcanary.demo import make_churn
from mlcanary.monitor.watch import window_seed
from tests.conftest import Result, cli_in_process, cli_runner, with_registry, write_csv
from tests.monitor.drift_data import WEATHER, most_allowed

TRAIN_DAYS = 4000
"""Weather's first eleven years train the model; the next forty are replayed."""


@pytest.fixture(scope="module")
def weather(tmp_path_factory: pytest.TempPathFactory) -> tuple[Callable[..., Result], Path]:
    if not WEATHER.exists():
        pytest.skip(f"{WEATHER} is absent (the shared data sets)")
    root = tmp_path_factory.mktemp("backtest")
    frame = pd.read_csv(WEATHER)
    train = write_csv(root / "weather.csv", frame.iloc[:TRAIN_DAYS])
    rest = write_csv(root / "later.csv", frame.iloc[TRAIN_DAYS:])
    cli = cli_runner(with_registry(root / "home"))
    # Training is not what is tested here: in this process, without a new interpreter's imports.
    trained = cli_in_process(root / "home")("train", str(train), "--target", "target",
                                            "--name", "weather", "--promote")
    assert trained.code == 0, trained.stderr
    return cli, rest


@pytest.mark.slow
@pytest.mark.longest
def test_an_aa_canary_on_weather_in_time_order_is_rarely_rolled_back(
    weather: tuple[Callable[..., Result], Path],
) -> None:
    """Forty years of real, drifting weather, the champion on both arms: every rollback
    would be a false one. At most 5% (binomial bound: 2 of 6). Six replays check the
    whole path on real data; the rate itself is measured on 20 (docs/statistics.md) and
    on simulated ramps (``test_ramp_simulation.py``), where the bound is tight."""
    cli, rest = weather
    repeats = 6
    ran = cli("backtest", "weather", str(rest), "--rollout", "canary", "--interval-rows",
              "1000", "--repeats", str(repeats), "--json")
    assert ran.code == 0, ran.stderr
    document = json.loads(ran.stdout)
    rollout = document["rollout"]
    assert rollout["repeats"] == repeats and len(rollout["steps"]) == repeats
    assert rollout["rolled_back"] <= most_allowed(repeats, 0.05)
    assert rollout["rolled_back"] + rollout["promoted"] + rollout["undecided"] + \
        rollout["paused"] == repeats
    drift = document["drift"]
    assert drift["windows"] > 0 and 0 <= drift["dataset_drift"] <= drift["windows"]


def test_unchanged_data_rarely_shows_prediction_drift(tmp_path: Path) -> None:
    """Fresh rows from the distribution the model was trained on: the served pipeline's
    scores on them match its scores on the reference, so prediction drift stays rare
    (<= 5% of windows; with out-of-fold reference scores it fired on most)."""
    train = write_csv(tmp_path / "churn.csv", make_churn(4000, seed=0))
    fresh = write_csv(tmp_path / "fresh.csv", make_churn(8000, seed=1))
    cli = cli_runner(with_registry(tmp_path / "home"))
    trained = cli_in_process(tmp_path / "home")("train", str(train), "--target", "churned",
                                                "--promote")
    assert trained.code == 0, trained.stderr
    ran = cli("backtest", "churn", str(fresh), "--repeats", "4", "--shuffle", "--json")
    assert ran.code == 0, ran.stderr
    drift = json.loads(ran.stdout)["drift"]
    assert drift["windows"] == 8 + 5 + 3 + 1  # offsets 0, 2333, 4667, 7000 of 8,000 rows
    assert drift["prediction_drift"] <= most_allowed(drift["windows"], 0.05)


def test_bad_options_are_one_line_with_exit_code_2(
    weather: tuple[Callable[..., Result], Path], tmp_path: Path,
) -> None:
    _, rest = weather
    cli = cli_in_process(rest.parent / "home")  # the subprocess runs in the other tests
    cases = [
        (["--target", "rain"], "--target 'rain': no such column"),
        (["--time-column", "day"], "--time-column 'day': no such column"),
        (["--rollout", "blue-green"], "--rollout: expected canary or ab"),
        (["--challenger", "2"], "need --rollout"),
        (["--version", "9"], "--version 9"),
    ]
    for options, message in cases:
        ran = cli("backtest", "weather", str(rest), *options)
        assert ran.code == 2 and message in ran.stderr, (options, ran.stderr)
        assert "Traceback" not in ran.stderr
    small = write_csv(tmp_path / "small.csv", pd.read_csv(rest).iloc[:300])
    ran = cli("backtest", "weather", str(small))
    assert ran.code == 2 and "300 labelled rows to replay" in ran.stderr, ran.stderr
    ran = cli("backtest", "weather", str(small), "--window-rows", "100", "--rollout", "canary",
              "--interval-rows", "100")
    assert ran.code == 2 and "fewer than a full canary ramp needs (600" in ran.stderr, ran.stderr


def test_a_challenger_with_another_signature_is_refused(
    weather: tuple[Callable[..., Result], Path], tmp_path: Path,
) -> None:
    cli, rest = weather
    other = pd.read_csv(rest).iloc[:2000].drop(columns="feat_8")
    trained = cli_in_process(rest.parent / "home")(
        "train", str(write_csv(tmp_path / "weather.csv", other)), "--target", "target",
        "--name", "weather")
    assert trained.code == 0, trained.stderr
    ran = cli("backtest", "weather", str(rest), "--rollout", "ab", "--challenger", "2")
    assert ran.code == 2 and "--challenger 2: its signature differs" in ran.stderr, ran.stderr
    assert "feat_8" in ran.stderr


def test_window_seeds_are_reproducible_and_differ_between_windows() -> None:
    seeds = {window_seed(0, "churn", "champion", 1, f"id-{k}") for k in range(1000)}
    assert len(seeds) == 1000
    assert window_seed(0, "churn", "champion", 1, "id-1") == window_seed(
        0, "churn", "champion", 1, "id-1")
    assert window_seed(0, "churn", "champion", 1, "id-1") != window_seed(
        0, "churn", "challenger", 1, "id-1")
