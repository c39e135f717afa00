"""The model's answer as V2 output tensors, and the part of it a request asked for."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mlcanary.errors import InvalidInput
from mlcanary.serve.messages import RequestedOutput
from mlcanary.serve.tensors import Tensor
from mlcanary.signature import Signature

PREDICT = "predict"
PROBABILITIES = "probabilities"


def outputs_for(
    signature: Signature, proba: np.ndarray | None, predicted: np.ndarray
) -> list[Tensor]:
    """``predict`` (a label or a value per row) and, for classifiers, ``probabilities``.

    The label tensor's type follows the labels, so a client gets back what it trained
    on: BYTES for text, INT64 for integers, BOOL for booleans, FP64 for numbers and for
    regression. ``probabilities`` is FP64 [n, classes] in ``signature.classes`` order,
    which it also carries as ``parameters.classes``: a client has no other way to learn
    which column is which class.
    """
    labels = np.asarray(predicted).reshape(-1)
    outputs = [_labels(labels, regression=signature.task == "regression")]
    if proba is None:
        return outputs
    classes = signature.classes or []
    if proba.shape != (len(labels), len(classes)):
        raise ValueError(
            f"probabilities: expected shape ({len(labels)}, {len(classes)}) for "
            f"{len(labels)} rows and {len(classes)} classes, got {proba.shape}"
        )
    outputs.append(
        Tensor(
            PROBABILITIES,
            "FP64",
            [len(labels), len(classes)],
            proba.astype(np.float64),
            {"classes": classes},
        )
    )
    return outputs


def select_outputs(outputs: Sequence[Tensor], requested: Sequence[RequestedOutput]) -> list[Tensor]:
    """The outputs a request named, in its order; all of them when it named none."""
    if not requested:
        return list(outputs)
    available = {tensor.name: tensor for tensor in outputs}
    for output in requested:
        if output.name not in available:
            raise InvalidInput(
                f"output '{output.name}': this model has no such output; "
                f"expected one of {list(available)}"
            )
    return [available[output.name] for output in requested]


def _labels(labels: np.ndarray, *, regression: bool) -> Tensor:
    shape = [len(labels)]
    kind = labels.dtype.kind
    if regression or kind == "f":
        return Tensor(PREDICT, "FP64", shape, labels.astype(np.float64))
    if kind == "b":
        return Tensor(PREDICT, "BOOL", shape, labels)
    if kind in "iu":
        return Tensor(PREDICT, "INT64", shape, labels.astype(np.int64))
    return Tensor(PREDICT, "BYTES", shape, [str(label) for label in labels.tolist()])
