"""Every runtime keeps the contract a micro-batching server relies on."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from mlcanary.config import Settings
from mlcanary.models.runtime import NativeRuntime, Runtime
from mlcanary.registry.versions import ModelRegistry
from mlcanary.serve.batch import tensors_from_frame
from mlcanary.serve.compiled import CompiledRuntime
from mlcanary.serve.onnx import OnnxRuntime
from mlcanary.serve.outputs import outputs_for
from mlcanary.serve.repository import ModelRepository, ServedModel
from mlcanary.serve.rest import metadata
from mlcanary.serve.validation import columns_from_frame, rows_from_tensors
from mlcanary.signature import Signature
from tests.serve.conftest import Server

Factory = Callable[[Any, Signature], Runtime]


RUNTIMES: dict[str, tuple[Factory, float]] = {
    "native": (NativeRuntime, 1e-12),
    "compiled": (CompiledRuntime, 1e-12),
    "onnx": (OnnxRuntime.convert, 1e-12),
}
"""Each runtime, and how far a row's scores may be between a batch and the row alone: none
at all within one runtime."""


@pytest.fixture(scope="module", params=sorted(RUNTIMES))
def runtime_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def model(runtime_name: str, server: Server) -> ServedModel:
    repository = ModelRepository(ModelRegistry(Settings(home=server.home)), ["churn"])
    repository.load()
    loaded = repository.get("churn")
    loaded.runtime = RUNTIMES[runtime_name][0](server.pipeline, loaded.signature)
    return loaded


def test_the_server_chose_a_verified_fast_runtime(server: Server) -> None:
    repository = ModelRepository(ModelRegistry(Settings(home=server.home)), ["churn"])
    repository.load()
    loaded = repository.get("churn")
    assert loaded.runtime.kind == "onnx"  # the first of the fixed order, and it verifies
    assert loaded.runtime_note.startswith("onnx runtime (max abs difference from native ")


def test_batch_equals_row_by_row(model: ServedModel, runtime_name: str, server: Server) -> None:
    tolerance = RUNTIMES[runtime_name][1]
    frame = rows_from_tensors(
        tensors_from_frame(server.rows.head(64), model.signature), model.signature
    )
    columns = columns_from_frame(server.rows.head(64), model.signature)
    for rows, row in ((frame, lambda i: frame.iloc[[i]]),  # a table, as `mlcanary predict`
                      (columns, lambda i: {k: v[i:i + 1] for k, v in columns.items()})):
        batch = model.runtime.predict(rows)
        for i in range(0, 64, 3):
            one = model.runtime.predict(row(i))
            np.testing.assert_allclose(one.proba, batch.proba[[i]], rtol=0, atol=tolerance)
            if one.predicted[0] != batch.predicted[i]:  # only a score at the threshold
                threshold = getattr(model.runtime, "threshold", None)
                assert threshold is not None, (one, batch.predicted[i])
                assert abs(batch.proba[i, 1] - threshold) <= tolerance
            assert one.predicted.dtype == batch.predicted.dtype


def test_predict_does_not_mutate_its_input(model: ServedModel, server: Server) -> None:
    rows = rows_from_tensors(
        tensors_from_frame(server.rows.head(50), model.signature), model.signature
    )
    before = rows.copy()
    model.runtime.predict(rows)
    assert rows.equals(before)


def test_outputs_match_the_metadata(model: ServedModel, server: Server) -> None:
    rows = rows_from_tensors(
        tensors_from_frame(server.rows.head(10), model.signature), model.signature
    )
    prediction = model.runtime.predict(rows)
    tensors = {
        t.name: t for t in outputs_for(model.signature, prediction.proba, prediction.predicted)
    }
    for declared in metadata(model)["outputs"]:
        tensor = tensors[declared["name"]]
        assert tensor.datatype == declared["datatype"]
        assert len(tensor.shape) == len(declared["shape"]) and tensor.shape[0] == 10
        assert all(d == -1 or d == s for d, s in zip(declared["shape"], tensor.shape, strict=True))
