"""Tensors become the pipeline's table, or a message that names the input and the fix."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlcanary.errors import InvalidInput
from mlcanary.serve.messages import encode_request, parse_request
from mlcanary.serve.tensors import Datatype, Tensor
from mlcanary.serve.validation import columns_from_tensors, rows_from_tensors
from mlcanary.signature import ColumnSpec, Signature

CITIES = ["Berlin", "London", "Paris"]


def signature() -> Signature:
    return Signature(
        [
            ColumnSpec("age", "numeric", nullable=False),
            ColumnSpec("visits", "integer", nullable=True),
            ColumnSpec("member", "boolean", nullable=True),
            ColumnSpec("city", "categorical", nullable=True, categories=CITIES),
            ColumnSpec("joined", "datetime", nullable=False, datetime_parts=["month"]),
            ColumnSpec("customer", "categorical", nullable=False, used=False, categories=["c1"]),
        ],
        target="churned",
        task="classification",
        classes=["no", "yes"],
    )


def numeric_signature() -> Signature:
    columns = [c for c in signature().columns if c.kind in ("numeric", "integer", "boolean")]
    return Signature(columns, target="churned", task="classification", classes=["no", "yes"])


def tensor(
    name: str, datatype: Datatype, values: list[Any], shape: list[int] | None = None
) -> Tensor:
    if datatype == "BYTES":
        flat = np.asarray(values, dtype=np.object_).reshape(-1).tolist()
        items = [v.encode() if isinstance(v, str) else v for v in flat]
        data = np.empty(len(items), dtype=np.object_)
        data[:] = items
    else:
        data = np.asarray(values, dtype={"FP64": float, "FP32": np.float32}.get(datatype))
    return Tensor(name, datatype, shape or [len(values)], data.reshape(shape or [len(values)]))


def good(**replace: Tensor) -> list[Tensor]:
    """Three valid rows, one tensor per column; ``replace`` swaps tensors by name."""
    inputs = {
        "age": tensor("age", "FP64", [41.0, 7.5, 63.0]),
        "visits": tensor("visits", "INT64", [3, 0, 12]),
        "member": tensor("member", "BOOL", [True, False, True]),
        "city": tensor("city", "BYTES", ["Paris", "Berlin", None]),
        "joined": tensor("joined", "BYTES", ["2024-01-31", "2023-12-01 10:00", "2024-02-29"]),
        "customer": tensor("customer", "BYTES", ["c1", "c7", "c9"]),
    }
    inputs.update(replace)
    return list(inputs.values())


def refused(inputs: list[Tensor], sig: Signature | None = None, **kwargs: Any) -> str:
    with pytest.raises(InvalidInput) as caught:
        rows_from_tensors(inputs, sig or signature(), **kwargs)
    return str(caught.value)


# Happy paths


def test_per_column_tensors_give_every_column_in_order_with_fixed_dtypes() -> None:
    frame = rows_from_tensors(list(reversed(good())), signature())
    assert list(frame.columns) == ["age", "visits", "member", "city", "joined", "customer"]
    assert frame.dtypes.astype(str).tolist() == [
        "float64",
        "Int64",
        "boolean",
        "str",
        "str",
        "str",
    ]
    assert frame["age"].tolist() == [41.0, 7.5, 63.0]
    assert frame["visits"].tolist() == [3, 0, 12]
    assert frame["member"].tolist() == [True, False, True]
    assert frame["city"].iloc[:2].tolist() == ["Paris", "Berlin"] and pd.isna(frame["city"][2])
    # An unused column's unseen values ('c7') are news for the monitor, not an error.
    assert frame["customer"].tolist() == ["c1", "c7", "c9"]


def test_column_tensors_may_be_n_by_1_and_of_other_numeric_types() -> None:
    inputs = good(
        age=tensor("age", "INT32", [[41], [7], [63]], [3, 1]),
        visits=tensor("visits", "FP64", [[3.0], [np.nan], [12.0]], [3, 1]),
        member=tensor("member", "UINT8", [1, 0, 1]),
        city=tensor("city", "BYTES", [["Paris"], [""], ["London"]], [3, 1]),
    )
    frame = rows_from_tensors(inputs, signature())
    assert frame["age"].dtype == np.float64 and frame["age"].tolist() == [41.0, 7.0, 63.0]
    assert frame["visits"].dtype == "Int64" and frame["visits"].isna().tolist() == [
        False,
        True,
        False,
    ]
    assert frame["member"].tolist() == [True, False, True]
    assert pd.isna(frame["city"][1])  # an empty string is missing, as in a CSV file


def test_boolean_column_reads_fp_zero_one_and_nan_as_missing() -> None:
    frame = rows_from_tensors(good(member=tensor("member", "FP32", [1, 0, np.nan])), signature())
    assert frame["member"].dtype == "boolean"
    assert frame["member"].isna().tolist() == [False, False, True]


def test_single_matrix_tensor_for_an_all_number_model() -> None:
    matrix = tensor("input-0", "FP32", [[41.0, 3, 1], [7.5, np.nan, 0]], [2, 3])
    frame = rows_from_tensors([matrix], numeric_signature())
    assert list(frame.columns) == ["age", "visits", "member"]
    assert frame.dtypes.astype(str).tolist() == ["float64", "Int64", "boolean"]
    assert frame["age"].tolist() == [41.0, 7.5]
    assert frame["visits"].isna().tolist() == [False, True]
    assert frame["member"].tolist() == [True, False]


def test_unseen_category_becomes_missing_when_asked() -> None:
    inputs = good(city=tensor("city", "BYTES", ["Paris", "Rome", "Oslo"]))
    frame = rows_from_tensors(inputs, signature(), unseen="missing")
    assert frame["city"].isna().tolist() == [False, True, True]
    assert frame["city"].dtype == "str"


# Refusals


def test_unknown_inputs_are_listed_with_the_expected_names() -> None:
    message = refused(good(age=tensor("agee", "FP64", [1.0, 2.0, 3.0])))
    assert message == (
        "inputs ['agee']: not columns of this model; expected one tensor per column, named "
        "['age', 'visits', 'member', 'city', 'joined', 'customer']; missing ['age']"
    )


def test_missing_columns_are_listed() -> None:
    inputs = [t for t in good() if t.name not in ("visits", "customer")]
    assert refused(inputs).startswith("inputs: missing columns ['visits', 'customer']; expected")


def test_wrong_datatype_names_input_expectation_and_what_came() -> None:
    bad = tensor("age", "BYTES", ["a", "b", "c", "d", "e", "f"], [3, 2])
    assert refused(good(age=bad)) == (
        "input 'age': expected FP64 (or another numeric type) with shape [n], "
        "got BYTES with shape [3, 2]"
    )


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        (tensor("city", "FP64", [1, 2, 3]), "input 'city': expected BYTES (UTF-8 text)"),
        (tensor("visits", "BOOL", [True] * 3), "input 'visits': expected INT64 (or another"),
        (
            tensor("member", "BYTES", ["y"] * 3),
            "input 'member': expected true/false, yes/no or 1/0 for a boolean column, got 'y'",
        ),
    ],
)
def test_each_kind_names_its_types(bad: Tensor, expected: str) -> None:
    assert refused(good(**{bad.name: bad})).startswith(expected)


def test_wrong_rank_says_which_shapes_a_column_takes() -> None:
    bad = tensor("age", "FP64", [1.0] * 6, [3, 2])
    assert refused(good(age=bad)) == (
        "input 'age': expected FP64 (or another numeric type) with shape [n], "
        "got FP64 with shape [3, 2]; a column tensor has shape [n] or [n, 1]"
    )


def test_row_counts_must_agree() -> None:
    message = refused(good(age=tensor("age", "FP64", [1.0, 2.0])))
    assert message == (
        "inputs: expected the same number of rows in every input, got 2 in ['age']; "
        "3 in ['visits', 'member', 'city', 'joined', 'customer']"
    )


def test_empty_batch_is_refused() -> None:
    inputs = [Tensor(t.name, t.datatype, [0], np.asarray(t.data)[:0]) for t in good()]
    assert refused(inputs) == "inputs: expected at least one row, got 0"


def test_missing_value_in_a_non_nullable_column_names_the_row() -> None:
    message = refused(good(age=tensor("age", "FP64", [1.0, np.nan, np.nan])))
    assert message == (
        "input 'age': missing value at row 1 (2 in all); expected a value in every row "
        "('age' is not nullable: training data had none missing)"
    )
    text = refused(good(customer=tensor("customer", "BYTES", ["c1", None, "c2"])))
    assert text.startswith("input 'customer': missing value at row 1 (1 in all)")


def test_unseen_category_is_refused_by_default_with_up_to_ten_allowed() -> None:
    sig = signature()
    many = [f"k{i:02d}" for i in range(12)]
    sig.columns[3].categories = many
    message = refused(good(city=tensor("city", "BYTES", ["k01", "Rome", "Oslo"])), sig)
    shown = ", ".join(repr(c) for c in many[:10])
    assert message == (
        "input 'city': unseen category 'Rome' at row 1 (2 unseen values in all); "
        f"expected one of [{shown}, ... (12 in all)]"
    )


def test_new_categories_in_a_signature_are_read_again() -> None:
    """Validation keeps each category list's set between requests; a list replaced or
    grown is read again, so no request is judged by categories the model no longer has."""
    sig = signature()
    rome = good(city=tensor("city", "BYTES", ["Rome", "Paris", "London"]))
    assert refused(rome, sig).startswith("input 'city': unseen category 'Rome' at row 0")
    sig.columns[3].categories = [*CITIES, "Rome"]
    assert rows_from_tensors(rome, sig)["city"].tolist() == ["Rome", "Paris", "London"]
    sig.columns[3].categories.append("Oslo")
    oslo = good(city=tensor("city", "BYTES", ["Oslo", "Rome", "Berlin"]))
    assert rows_from_tensors(oslo, sig)["city"].tolist() == ["Oslo", "Rome", "Berlin"]
    sig.columns[3].categories = ["Berlin"]
    assert refused(oslo, sig).startswith("input 'city': unseen category 'Oslo' at row 0")


def test_bytes_must_be_utf8() -> None:
    message = refused(good(city=tensor("city", "BYTES", [b"Paris", b"\xff", b"Berlin"])))
    assert message.startswith("input 'city': row 1 is not valid UTF-8 (invalid start byte at")
    assert message.endswith("expected UTF-8 text")


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        (
            tensor("visits", "FP64", [1.0, 2.5, 3.0]),
            "input 'visits': expected whole numbers (or NaN) for an integer column, got 2.5 "
            "at row 1",
        ),
        (
            tensor("visits", "FP64", [1.0, np.inf, 3.0]),
            "input 'visits': expected whole numbers (or NaN) for an integer column, got inf "
            "at row 1",
        ),
        (
            tensor("visits", "FP64", [1.0, 1e19, -0.0]),
            "input 'visits': expected whole numbers (or NaN) for an integer column, got 1e+19 "
            "at row 1",
        ),
        (
            tensor("visits", "UINT64", np.array([1, 2**63, 3], dtype=np.uint64).tolist()),
            "input 'visits': expected integers below 2**63, got 9223372036854775808 at row 1",
        ),
        (
            tensor("member", "INT8", [1, 2, 0]),
            "input 'member': expected 0 or 1 (or NaN) for a boolean column, got 2 at row 1",
        ),
        (
            tensor("joined", "BYTES", ["2024-01-31", "2024-01-31", "soon"]),
            "input 'joined': expected dates or timestamps (e.g. '2024-01-31'), got 'soon' at row 2",
        ),
    ],
)
def test_values_the_column_kind_cannot_hold(bad: Tensor, expected: str) -> None:
    assert refused(good(**{bad.name: bad})) == expected


def test_dates_read_before_pass_and_impossible_ones_are_refused_cached_or_not() -> None:
    dates = ["2024-01-31", "2023-12-01 10:00", "2024-02-29"]
    contract = signature()
    cache = contract.date_cache()
    cache.calendar_parts(np.asarray(dates, dtype=object), ("month",))  # now cached: valid
    assert cache.all_known(np.asarray([*dates, None], dtype=object))
    rows_from_tensors(good(joined=tensor("joined", "BYTES", dates)), contract)
    for text in ("2024-03-01T10:11:60", "2024-02-30"):
        cache.calendar_parts(np.asarray([text], dtype=object), ("month",))  # pandas: not cached
        assert not cache.all_known(np.asarray([text], dtype=object))
        bad = tensor("joined", "BYTES", [*dates[:2], text])
        assert refused(good(joined=bad), contract) == (
            "input 'joined': expected dates or timestamps (e.g. '2024-01-31'), "
            f"got {text!r} at row 2"
        )


def test_matrix_tensor_needs_an_all_number_model_and_says_why() -> None:
    matrix = tensor("input-0", "FP64", [[1.0] * 6], [1, 6])
    assert refused([matrix]) == (
        "input 'input-0': one [n, 6] tensor can carry only numeric, integer and boolean "
        "columns, but this model also takes 'city' (categorical), 'joined' (datetime), "
        "'customer' (categorical), which travel as BYTES; expected one tensor per column, "
        "named ['age', 'visits', 'member', 'city', 'joined', 'customer']"
    )


@pytest.mark.parametrize(
    "matrix",
    [
        tensor("input-0", "FP64", [[1.0, 2.0]], [1, 2]),
        tensor("input-0", "INT64", [[1, 2, 3]], [1, 3]),
        tensor("input-0", "FP64", [1.0, 2.0, 3.0]),
    ],
)
def test_matrix_tensor_shape_and_type(matrix: Tensor) -> None:
    message = refused([matrix], numeric_signature())
    assert message.startswith(
        "input 'input-0': expected FP32 or FP64 with shape [n, 3] (columns "
        "['age', 'visits', 'member'] in this order), got "
    )


def test_matrix_errors_name_the_column() -> None:
    matrix = tensor("input-0", "FP64", [[np.nan, 1, 0]], [1, 3])
    assert refused([matrix], numeric_signature()).startswith(
        "input 'input-0' column 0 ('age'): missing value at row 0"
    )


def test_boolean_column_reads_the_text_forms_of_a_csv_file() -> None:
    member = tensor("member", "BYTES", [b"Yes", b"false", b""])
    frame = rows_from_tensors(good(member=member), signature())
    assert frame["member"].tolist()[:2] == [True, False] and pd.isna(frame["member"][2])
    with pytest.raises(
        InvalidInput, match=r"input 'member': expected true/false.*got 'maybe' at row 1"
    ):
        rows_from_tensors(
            good(member=tensor("member", "BYTES", [b"yes", b"maybe", b"no"])), signature()
        )


def test_merged_columns_equal_concatenated_frames() -> None:
    from mlcanary.serve.validation import as_frame, columns_from_tensors, merge_columns

    first = columns_from_tensors(good(), signature())
    second = columns_from_tensors(
        good(member=tensor("member", "BYTES", [b"no", b"", b"yes"])), signature()
    )
    merged = as_frame(merge_columns([first, second, first]))
    expected = pd.concat([as_frame(first), as_frame(second), as_frame(first)], ignore_index=True)
    pd.testing.assert_frame_equal(merged, expected)


# Any request: a clear refusal or typed columns, never another exception

_VALUES = {
    "FP64": st.floats() | st.none(),
    "FP32": st.floats(width=32) | st.none(),
    "INT64": st.integers(-(2**70), 2**70),
    "INT8": st.integers(-200, 200),
    "UINT64": st.integers(0, 2**64),
    "BOOL": st.booleans() | st.integers(0, 2),
    "BYTES": st.none() | st.text(max_size=6),
}
_OWN = {  # each column's datatype, values it accepts, and one value it refuses
    "age": ("FP64", st.floats(-1e3, 1e3), None),  # not nullable
    "visits": ("FP64", st.integers(0, 50).map(float) | st.none(), 2.5),
    "member": ("BYTES", st.sampled_from(["yes", "No", "0", " true ", ""]), "maybe"),
    "city": ("BYTES", st.sampled_from([*CITIES, None]), "Rome"),
    "joined": ("BYTES", st.sampled_from(["2024-02-29", "2023-12-01 10:00"]), "2024-02-30"),
    "customer": ("BYTES", st.sampled_from(["c1", "c7"]), None),  # unused, not nullable
}


@st.composite
def column_requests(draw: st.DrawFn) -> tuple[bytes, int | None, bool | None]:
    """One tensor per signature column (the body, its binary header length), and whether
    validation must accept it (None: either way). A column holds its own kind of values;
    or those and one it refuses; or any datatype with values of any kind. Requests of
    the columns' own datatypes also travel as binary tensors, as ``tritonclient`` sends."""
    n = draw(st.integers(1, 4))
    inputs, verdicts = [], []
    for spec in signature().columns:
        datatype, good_values, bad = _OWN[spec.name]
        how = draw(st.integers(0, 9))
        if how == 0:
            datatype = draw(st.sampled_from(sorted(_VALUES)))
            data = draw(st.lists(_VALUES[datatype], min_size=n, max_size=n))
            verdicts.append(None)
        else:
            data = draw(st.lists(good_values, min_size=n, max_size=n))
            if how == 1:
                data[draw(st.integers(0, n - 1))] = bad
            verdicts.append(how != 1)
        shape = draw(st.sampled_from([[n], [n, 1]]))
        inputs.append({"name": spec.name, "datatype": datatype, "shape": shape, "data": data})
    verdict = False if False in verdicts else (None if None in verdicts else True)
    if None not in verdicts and draw(st.booleans()):
        tensors = [_as_tensor(item) for item in inputs]
        body, length = encode_request(tensors, binary=[t.name for t in tensors])
        return body, length, verdict
    return json.dumps({"inputs": inputs}).encode(), None, verdict  # NaN as Python writes it


def _as_tensor(item: dict[str, Any]) -> Tensor:
    if item["datatype"] == "BYTES":
        values = [None if v is None else v.encode() for v in item["data"]]
        data = np.empty(len(values), dtype=np.object_)
        data[:] = values
    else:
        data = np.array([np.nan if v is None else v for v in item["data"]], dtype=np.float64)
    return Tensor(item["name"], item["datatype"], item["shape"], data.reshape(item["shape"]))


@settings(deadline=None, max_examples=300)
@given(column_requests())
def test_any_column_request_is_refused_clearly_or_typed(
    case: tuple[bytes, int | None, bool | None],
) -> None:
    body, length, verdict = case
    sig = signature()
    try:
        request = parse_request(body, length)
        columns = columns_from_tensors(request.inputs, sig)
    except InvalidInput as exc:
        assert verdict is not True, str(exc)
        assert str(exc).startswith(("input", "inputs")), str(exc)
        return
    assert verdict is not False, body
    n = request.inputs[0].shape[0]
    assert list(columns) == [c.name for c in sig.columns]
    assert all(len(values) == n for values in columns.values())
    assert columns["age"].dtype == np.float64 and not np.isnan(columns["age"]).any()
    assert columns["visits"].dtype == "Int64" and columns["member"].dtype == "boolean"
    for name in ("city", "joined", "customer"):
        assert all(v is None or (isinstance(v, str) and v) for v in columns[name]), name
    assert set(columns["city"]) <= {*CITIES, None}
