"""Feedback from a JSON body or a file becomes the same items, or one clear error."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlcanary.errors import InvalidInput
from mlcanary.store.feedback import FeedbackItem, check_labels, items_from_frame, parse_feedback

SOURCE = "feedback file 'labels.csv'"


def test_a_body_becomes_one_item_per_id_with_a_label_per_row() -> None:
    items = parse_feedback([{"id": "a", "label": 1}, {"id": "b", "label": ["x", "y"]}])
    assert items == [FeedbackItem("a", [1]), FeedbackItem("b", ["x", "y"])]
    assert parse_feedback([]) == []


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"id": "a"}, 'feedback: expected a JSON list of an object {"id": "...", "label": ...} '),
        ([{"id": ""}], "feedback item 0 'id': expected the prediction's id as a non-empty string"),
        ([{"id": "a", "label": []}], "feedback item 0 (id 'a') 'label': expected one value"),
        ([{"id": "a", "label": [[1]]}], "feedback item 0 (id 'a') 'label': expected one value"),
        ([{"id": "a", "label": 1}, 5], "feedback item 1: expected an object"),
    ],
)
def test_malformed_bodies_name_the_item_and_field(document: Any, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_feedback(document)
    assert str(caught.value).startswith(message)


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(), st.lists, max_leaves=8))
def test_any_json_is_items_or_invalid_input(document: Any) -> None:
    try:
        items = parse_feedback(document)
    except InvalidInput:
        return
    assert all(item.labels and isinstance(item.id, str) for item in items)


def test_a_file_without_row_has_one_label_per_id() -> None:
    frame = pd.DataFrame({"id": ["a", "b"], "label": [1, 0]})
    assert items_from_frame(frame, SOURCE) == [FeedbackItem("a", [1]), FeedbackItem("b", [0])]
    with pytest.raises(InvalidInput) as caught:
        items_from_frame(pd.DataFrame({"id": ["a", "a"], "label": [1, 0]}), SOURCE)
    assert str(caught.value) == (
        f"{SOURCE} records 1 and 2: the same id 'a'; expected each id once; add a 'row' "
        "column to label several rows of one prediction"
    )


def test_a_file_with_row_orders_each_ids_labels_by_row() -> None:
    frame = pd.DataFrame(
        {"id": ["m", "one", "m", "m"], "row": [2, 0, 0, 1], "label": ["z", "q", "x", "y"]}
    )
    assert items_from_frame(frame, SOURCE) == [
        FeedbackItem("m", ["x", "y", "z"]),
        FeedbackItem("one", ["q"]),
    ]


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (
            pd.DataFrame({"id": ["a"], "target": [1]}),
            f"{SOURCE}: missing column(s) ['label']; expected columns id and label",
        ),
        (pd.DataFrame({"id": ["a", None], "label": [1, 0]}), f"{SOURCE} record 2: missing 'id'"),
        (pd.DataFrame({"id": ["a"], "label": [np.nan]}), f"{SOURCE} record 1: missing 'label'"),
        (
            pd.DataFrame({"id": ["a", "a"], "row": [0, 2], "label": [1, 0]}),
            f"{SOURCE}: id 'a' has rows [0, 2]; expected rows 0 to 1, each once",
        ),
        (
            pd.DataFrame({"id": ["a", "a"], "row": [0, 0], "label": [1, 0]}),
            f"{SOURCE} record 2: id 'a' row 0 is labelled twice",
        ),
        (
            pd.DataFrame({"id": ["a"], "row": [0.5], "label": [1]}),
            f"{SOURCE} record 1 'row': expected a row number 0, 1, ..., got 0.5",
        ),
    ],
)
def test_a_bad_file_names_the_record_and_column(frame: pd.DataFrame, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        items_from_frame(frame, SOURCE)
    assert str(caught.value).startswith(message)


def test_labels_become_the_classes_they_spell() -> None:
    assert check_labels(FeedbackItem("a", ["1", 0, 1.0]), 3, [0, 1]) == [1, 0, 1]
    assert check_labels(FeedbackItem("a", ["true", False]), 2, [False, True]) == [True, False]
    assert check_labels(FeedbackItem("a", [2]), 1, None) == [2.0]
    for bad in (float("nan"), None, True):
        with pytest.raises(InvalidInput, match="feedback id 'a': label"):
            check_labels(FeedbackItem("a", [bad]), 1, None if bad is True else ["no", "yes"])
