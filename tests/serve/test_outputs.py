"""The answer's tensors follow the labels' type, and a request gets the outputs it named."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from mlcanary.errors import InvalidInput
from mlcanary.serve.messages import RequestedOutput
from mlcanary.serve.outputs import outputs_for, select_outputs
from mlcanary.signature import ColumnSpec, Signature
from mlcanary.types import Task


def signature(task: Task, classes: list[Any] | None) -> Signature:
    return Signature([ColumnSpec("age", "numeric", nullable=False)], "y", task, classes)


@pytest.mark.parametrize(
    ("classes", "predicted", "datatype", "data"),
    [
        (["no", "yes"], np.array(["yes", "no"], dtype=object), "BYTES", ["yes", "no"]),
        ([0, 1], np.array([1, 0]), "INT64", [1, 0]),
        ([False, True], np.array([True, False]), "BOOL", [True, False]),
    ],
)
def test_classifier_answers_labels_and_probabilities(
    classes: list[Any], predicted: np.ndarray, datatype: str, data: list[Any]
) -> None:
    proba = np.array([[0.25, 0.75], [0.5, 0.5]], dtype=np.float32)
    predict, probabilities = outputs_for(signature("classification", classes), proba, predicted)
    assert (predict.name, predict.datatype, predict.shape) == ("predict", datatype, [2])
    assert predict.array().tolist() == data
    assert (probabilities.name, probabilities.datatype, probabilities.shape) == (
        "probabilities",
        "FP64",
        [2, 2],
    )
    assert probabilities.array().dtype == np.float64
    assert probabilities.parameters == {"classes": classes}


def test_regressor_answers_values_only() -> None:
    (predict,) = outputs_for(signature("regression", None), None, np.array([1, 2]))
    assert (predict.datatype, predict.array().tolist()) == ("FP64", [1.0, 2.0])


def test_probabilities_must_match_rows_and_classes() -> None:
    with pytest.raises(ValueError, match=r"expected shape \(2, 2\)"):
        outputs_for(signature("classification", [0, 1]), np.ones((2, 3)), np.array([0, 1]))


def test_select_outputs_follows_the_request() -> None:
    outputs = outputs_for(signature("classification", [0, 1]), np.ones((1, 2)) / 2, np.array([0]))
    assert select_outputs(outputs, []) == outputs
    chosen = select_outputs(outputs, [RequestedOutput("probabilities"), RequestedOutput("predict")])
    assert [t.name for t in chosen] == ["probabilities", "predict"]


def test_unknown_requested_output_lists_the_available_ones() -> None:
    outputs = outputs_for(signature("regression", None), None, np.array([1.0]))
    with pytest.raises(InvalidInput) as caught:
        select_outputs(outputs, [RequestedOutput("probabilities", True)])
    assert str(caught.value) == (
        "output 'probabilities': this model has no such output; expected one of ['predict']"
    )
