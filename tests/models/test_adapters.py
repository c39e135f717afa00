"""The model adapter contract, run over every adapter in ``models.adapter.ADAPTERS``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from mlcanary.config import Settings
from mlcanary.errors import InvalidInput
from mlcanary.models.adapter import ADAPTERS, AdapterType, open_model
from mlcanary.models.foreign import MlflowModel
from mlcanary.models.tabular import TabularModel
from mlcanary.registry.versions import ModelRegistry
from tests.models.plain import fitted_pipeline, log_plain, plain_table
from tests.serve.conftest import registered_churn


def tabular_directory(tmp: Path) -> Path:
    home = registered_churn(tmp, rows=800, seed=3)
    return ModelRegistry(Settings(home=home)).download("churn", 1, tmp / "download")


def plain_directory(tmp: Path) -> Path:
    frame, target = plain_table(300, seed=2)
    log_plain(tmp / "home", "plain", fitted_pipeline(frame, target), frame)
    return ModelRegistry(Settings(home=tmp / "home")).download("plain", 1, tmp / "download")


BUILDERS: dict[AdapterType, Callable[[Path], Path]] = {
    TabularModel: tabular_directory, MlflowModel: plain_directory}
"""How to make a model directory each adapter opens: an adapter without one fails below."""


def test_every_adapter_has_a_contract_fixture() -> None:
    assert set(ADAPTERS) == set(BUILDERS)


@pytest.fixture(scope="module", params=ADAPTERS, ids=lambda a: a.__name__)
def directory(request: pytest.FixtureRequest,
              tmp_path_factory: pytest.TempPathFactory) -> tuple[AdapterType, Path]:
    adapter = request.param
    return adapter, BUILDERS[adapter](tmp_path_factory.mktemp(adapter.__name__))


def test_it_recognises_its_own_directories_only(
    directory: tuple[AdapterType, Path], tmp_path: Path
) -> None:
    adapter, root = directory
    assert adapter.recognises(root)
    assert not adapter.recognises(tmp_path)
    assert type(open_model(root)) is adapter


def test_a_directory_no_adapter_knows_is_refused_naming_the_kinds(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"model 'x': not a model any adapter opens; "
                                           r"expected one of: mlcanary tabular"):
        open_model(tmp_path, "model 'x'")


def test_it_predicts_a_batch_as_its_signature_says(directory: tuple[AdapterType, Path]) -> None:
    model = open_model(directory[1])
    signature = model.signature
    reference = model.reference()
    assert set(signature.names()) <= set(reference.columns)
    rows = model.sample()
    assert list(rows.columns) == [c.name for c in signature.columns] and len(rows)
    prediction = model.native().predict(rows)
    assert len(prediction.predicted) == len(rows)
    if signature.classes is None:
        assert prediction.proba is None
    else:
        assert prediction.proba is not None
        assert prediction.proba.shape == (len(rows), len(signature.classes))
        np.testing.assert_allclose(prediction.proba.sum(axis=1), 1.0, atol=1e-9)
        assert set(prediction.predicted.tolist()) <= set(signature.classes)
        if len(reference):  # a version with a reference has its scores in it
            assert {f"__score__{c}" for c in signature.classes} <= set(reference.columns)


def test_its_profile_names_its_own_columns(directory: tuple[AdapterType, Path]) -> None:
    model = open_model(directory[1])
    importance = model.importance()
    assert set(importance) <= {c.name for c in model.signature.columns}
    assert all(v >= 0 for v in importance.values())
    assert all(np.isfinite(v) for v in model.baseline().values())


def test_without_its_predictor_it_loads_no_model(directory: tuple[AdapterType, Path]) -> None:
    whole = open_model(directory[1])
    light = open_model(directory[1], predictor=False)
    assert light.pipeline is None and light.signature == whole.signature
    assert light.reference().equals(whole.reference())
    with pytest.raises(ValueError, match="without its predictor"):
        light.native()
