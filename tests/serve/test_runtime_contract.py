"""Every runtime keeps the contract a micro-batching server relies on."""

from __future__ import annotations

import numpy as np
import pytest

from mlcanary.config import Settings
from mlcanary.registry.versions import ModelRegistry
from mlcanary.serve.app import metadata
from mlcanary.serve.batch import tensors_from_frame
from mlcanary.serve.compiled import CompiledRuntime
from mlcanary.serve.onnx import OnnxRuntime
from mlcanary.serve.outputs import outputs_for
from mlcanary.serve.repository import ModelRepository, ServedModel
from mlcanary.serve.runtime import NativeRuntime
from mlcanary.serve.validation import rows_from_tensors
from tests.serve.conftest import Server

RUNTIMES = {"native": NativeRuntime, "compiled": CompiledRuntime, "onnx": OnnxRuntime}


@pytest.fixture(scope="module", params=sorted(RUNTIMES))
def model(request: pytest.FixtureRequest, server: Server) -> ServedModel:
    repository = ModelRepository(ModelRegistry(Settings(home=server.home)), ["churn"])
    repository.load()
    loaded = repository.get("churn")
    loaded.runtime = RUNTIMES[request.param](server.pipeline, loaded.signature)
    return loaded


def test_the_server_chose_a_verified_fast_runtime(server: Server) -> None:
    repository = ModelRepository(ModelRegistry(Settings(home=server.home)), ["churn"])
    repository.load()
    loaded = repository.get("churn")
    assert loaded.runtime.kind in ("compiled", "onnx")
    assert loaded.runtime_note.startswith(f"{loaded.runtime.kind} runtime")


def test_batch_equals_row_by_row(model: ServedModel, server: Server) -> None:
    rows = rows_from_tensors(
        tensors_from_frame(server.rows.head(64), model.signature), model.signature
    )
    batch = model.runtime.predict(rows)
    for i in range(0, 64, 7):
        one = model.runtime.predict(rows.iloc[[i]])
        np.testing.assert_allclose(one.proba, batch.proba[[i]], rtol=0, atol=1e-12)
        assert one.predicted[0] == batch.predicted[i]


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
