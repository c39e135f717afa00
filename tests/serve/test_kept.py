"""The runtime choice kept with a version: written once, read back, refused when it is off."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlcanary.config import Settings
from mlcanary.registry.versions import SERVING_FOLDER, ModelRegistry
from mlcanary.serve import kept
from mlcanary.serve.onnx import OnnxPlan
from mlcanary.serve.repository import ModelRepository
from tests.serve.conftest import registered_churn


def repository(home: Path, runtime: str = "auto") -> ModelRepository:
    return ModelRepository(ModelRegistry(Settings(home=home, runtime=runtime)), ["churn"])


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One training, published as one version per test (each test keeps its own)."""
    return registered_churn(tmp_path_factory.mktemp("kept"), 600, seed=4, versions=5)


def test_the_first_load_keeps_its_choice_and_the_next_serves_it(home: Path) -> None:
    v = 1
    first = repository(home).load_version("churn", v)
    assert first.runtime.kind == "onnx" and "kept" not in first.runtime_note
    registry = ModelRegistry(Settings(home=home))
    found = kept.read(registry, registry.version("churn", v))
    assert found is not None and found.runtime == "onnx" and found.plan is not None
    assert found.rows == len(found.scores) > 0
    second = repository(home).load_version("churn", v)
    assert second.runtime.kind == "onnx" and "kept with the version" in second.runtime_note
    assert second.signature == first.signature


def test_a_kept_plan_that_no_longer_matches_is_chosen_afresh(home: Path, tmp_path: Path) -> None:
    v = 2
    registry = ModelRegistry(Settings(home=home))
    repository(home).load_version("churn", v)
    info = registry.version("churn", v)
    folder = registry.kept(info, SERVING_FOLDER, tmp_path / "copy")
    assert folder is not None
    choice = json.loads((folder / kept.CHOICE).read_text())
    choice["scores"] = [[p[1], p[0]] for p in choice["scores"]]  # as if another model's
    (folder / kept.CHOICE).write_text(json.dumps(choice))
    registry.keep(info, SERVING_FOLDER, folder)
    again = repository(home).load_version("churn", v)
    assert again.runtime.kind == "onnx" and "kept" not in again.runtime_note


def test_an_unreadable_kept_choice_is_chosen_afresh(home: Path, tmp_path: Path) -> None:
    v = 3
    registry = ModelRegistry(Settings(home=home))
    info = registry.version("churn", v)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / kept.CHOICE).write_text('{"runtime": "onnx"}')  # no plan, no scores
    registry.keep(info, SERVING_FOLDER, broken)
    assert kept.read(registry, info) is None
    loaded = repository(home).load_version("churn", v)
    assert loaded.runtime.kind == "onnx" and "kept" not in loaded.runtime_note
    assert kept.read(registry, info) is not None  # the fresh choice was kept over it


def test_a_forced_runtime_is_not_kept_and_does_not_read_a_kept_plan(home: Path) -> None:
    v = 4
    registry = ModelRegistry(Settings(home=home))
    forced = repository(home, "compiled").load_version("churn", v)
    assert forced.runtime.kind == "compiled"
    assert kept.read(registry, registry.version("churn", v)) is None
    repository(home).load_version("churn", v)
    again = repository(home, "compiled").load_version("churn", v)
    assert again.runtime.kind == "compiled"


def test_a_plan_reads_back_as_written(home: Path, tmp_path: Path) -> None:
    v = 5
    served = repository(home).load_version("churn", v)
    plan = served.runtime.plan  # type: ignore[attr-defined]
    plan.write(tmp_path / "plan")
    assert OnnxPlan.read(tmp_path / "plan") == plan
