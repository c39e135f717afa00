"""Column role inference on tables built to hold each kind of column."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlcanary.errors import InvalidInput
from mlcanary.train.schema import (
    check_time_column,
    infer_column,
    infer_signature,
    is_identifier,
)


def frame(n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "row_id": np.arange(1000, 1000 + n),
            "user_key": [f"u{i:05d}" for i in range(n)],
            "amount": rng.normal(size=n),
            "count": rng.integers(0, 5, n),
            "flag": rng.choice([True, False], n),
            "yes_no": rng.choice(["yes", "no"], n),
            "colour": rng.choice(["red", "green", "blue"], n),
            "when": pd.date_range("2024-01-01", periods=n, freq="7h").strftime("%Y-%m-%d %H:%M"),
            "const": "x",
            "y": rng.integers(0, 2, n),
        }
    )


def test_each_kind_is_recognised() -> None:
    sig = infer_signature(frame(), "y", "classification")
    kinds = {c.name: (c.kind, c.used) for c in sig.columns}
    assert kinds == {
        "row_id": ("integer", False),
        "user_key": ("categorical", False),
        "amount": ("numeric", True),
        "count": ("integer", True),
        "flag": ("boolean", True),
        "yes_no": ("boolean", True),
        "colour": ("categorical", True),
        "when": ("datetime", True),
        "const": ("categorical", False),
    }
    assert [c.name for c in sig.columns] == [c for c in frame().columns if c != "y"]


def test_dropped_columns_say_why_and_datetimes_say_which_parts() -> None:
    notes: list[str] = []
    sig = infer_signature(frame(), "y", "classification", warn=notes.append)
    by_name = {c.name: c for c in sig.columns}
    assert "ID-like" in by_name["user_key"].note and "ID-like" in by_name["row_id"].note
    assert by_name["user_key"].categories is None  # 200 IDs are not a category list
    assert "constant" in by_name["const"].note
    assert by_name["when"].datetime_parts == ["month", "day_of_week", "day", "hour"]
    assert len(notes) == 4
    assert by_name["colour"].categories == ["blue", "green", "red"]


def test_columns_told_to_be_identifiers_are_left_out_whatever_their_values() -> None:
    table = frame().assign(user_key=lambda f: f["user_key"].str[:4])  # repeats: a category
    assert {c.name: c.used for c in infer_signature(table, "y", "classification").columns}[
        "user_key"]
    sig = infer_signature(table, "y", "classification", ids=("user_key", "amount"))
    by_name = {c.name: c for c in sig.columns}
    for name in ("user_key", "amount", "row_id"):
        assert not by_name[name].used and is_identifier(by_name[name]), name
    assert by_name["user_key"].categories is None  # nothing to refuse unseen IDs by
    assert not is_identifier(by_name["const"]) and by_name["colour"].used


def test_constant_column_with_gaps_is_kept_for_its_missingness() -> None:
    spec = infer_column(pd.Series(["a", None] * 20, name="c"))
    assert spec.used and spec.nullable


def test_all_missing_column_is_an_error() -> None:
    with pytest.raises(InvalidInput, match="column 'gone': all 30 values are missing"):
        infer_column(pd.Series([np.nan] * 30, name="gone"))


def test_mixed_numbers_and_text_is_an_error_naming_examples() -> None:
    values = pd.Series(["1", "2.5", "3", "unknown"] * 10, name="age")
    with pytest.raises(
        InvalidInput, match=r"column 'age': mixes numbers \(75% of values\).*'unknown'"
    ):
        infer_column(values)


def test_python_objects_of_two_types_are_mixed() -> None:
    with pytest.raises(InvalidInput, match="mixes numbers"):
        infer_column(pd.Series([1, "a", 2, "b"] * 10, name="m", dtype=object))


def test_time_column_must_hold_times() -> None:
    df = frame()
    assert check_time_column(df, "when").is_monotonic_increasing
    with pytest.raises(InvalidInput, match="--time-column 'colour': expected dates"):
        check_time_column(df, "colour")
    with pytest.raises(InvalidInput, match="--time-column 'amount': expected dates"):
        check_time_column(df, "amount")
    with pytest.raises(InvalidInput, match="no such column"):
        check_time_column(df, "nope")
