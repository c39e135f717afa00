"""Registered versions load back with the same scores, and aliases move as documented."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer, load_iris

from mlcanary.config import Settings
from mlcanary.registry.versions import ModelRegistry
from mlcanary.signature import Signature
from mlcanary.train.fit import TrainResult, train
from mlcanary.train.publish import publish
from mlcanary.train.spec import TrainSpec
from tests.conftest import Result, cli_in_process, write_csv


def fit(path: Path, home: Path, **options: object) -> TrainResult:
    return train(TrainSpec.parse(data=path, target="target", **options), Settings(home=home))


@pytest.fixture
def cancer(tmp_path: Path) -> tuple[Path, pd.DataFrame]:
    frame = load_breast_cancer(as_frame=True).frame
    return write_csv(tmp_path / "cancer.csv", frame), frame.drop(columns=["target"])


def test_champion_loads_back_with_identical_scores(
    home: Path, cancer: tuple[Path, pd.DataFrame]
) -> None:
    path, X = cancer
    result = fit(path, home, name="cancer")
    version = publish(result, ModelRegistry(Settings(home=home)), "<html></html>")
    assert (version.version, version.aliases) == (1, ["champion"])

    uri = Settings(home=home).registry_uri
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    loaded = mlflow.sklearn.load_model("models:/cancer@champion")
    expected = result.pipeline.predict_proba(X)
    np.testing.assert_array_equal(loaded.predict_proba(X), expected)
    np.testing.assert_array_equal(loaded.predict(X), result.pipeline.predict(X))
    pyfunc = mlflow.pyfunc.load_model("models:/cancer@champion")
    np.testing.assert_array_equal(np.asarray(pyfunc.predict(X)), result.pipeline.predict(X))
    # The served decision uses the threshold chosen on out-of-fold scores.
    assert result.threshold is not None
    manual = np.where(expected[:, 1] >= result.threshold.value, 1, 0)
    np.testing.assert_array_equal(loaded.predict(X), manual)


def test_version_bundle_holds_signature_profile_and_report(home: Path, tmp_path: Path) -> None:
    frame = load_iris(as_frame=True).frame
    frame["batch"] = "b1"  # constant: dropped by the model, kept in the signature
    path = write_csv(tmp_path / "iris.csv", frame)
    result = fit(path, home, name="iris")
    registry = ModelRegistry(Settings(home=home))
    publish(result, registry, "<html>report</html>")
    root = registry.download("iris", "champion", tmp_path / "download")
    bundle = root / "mlcanary"
    assert sorted(p.name for p in bundle.iterdir()) == sorted(
        [
            "signature.json",
            "profile.json",
            "reference.parquet",
            "metrics.json",
            "report.html",
            "spec.json",
        ]
    )
    signature = Signature.from_dict(json.loads((bundle / "signature.json").read_text()))
    assert [c.name for c in signature.columns] == [c for c in frame.columns if c != "target"]
    assert signature.classes == [0, 1, 2]
    assert not next(c for c in signature.columns if c.name == "batch").used
    profile = json.loads((bundle / "profile.json").read_text())
    assert profile["columns"]["batch"]["frequencies"] == {"b1": 1.0}
    assert len(profile["columns"]["sepal length (cm)"]["quantiles"]) == 101
    assert abs(sum(profile["importance"].values()) - 1) < 1e-9
    reference = pd.read_parquet(bundle / "reference.parquet")
    assert len(reference) == 150 and "__prediction__" in reference
    assert {"__score__0", "__score__1", "__score__2"} <= set(reference.columns)


@pytest.mark.slow
def test_aliases_champion_then_challenger_then_promote(
    home: Path, cli: Callable[..., Result], tmp_path: Path
) -> None:
    frame = load_breast_cancer(as_frame=True).frame.iloc[:, [0, 1, 2, 3, 20, 21, 22, 27, 30]]
    path = write_csv(tmp_path / "small.csv", frame)
    args = (
        "train",
        str(path),
        "--target",
        "target",
        "--name",
        "bc",
        "--model",
        "logistic",
        "--folds",
        "3",
    )
    first = cli(*args)
    assert first.code == 0, first.stderr
    assert "registered bc version 1 (champion)" in first.stdout
    report = Path(first.stdout.split("report: ")[1].split()[0])
    assert report.exists() and report.name == "bc-v1.html"
    cli = cli_in_process(home)  # the same entry point, without a new interpreter's imports
    assert cli(*args).code == 0
    assert cli(*args, "--promote").code == 0

    listing = cli("models", "bc", "--json")
    assert listing.code == 0, listing.stderr
    doc = json.loads(listing.stdout)
    assert doc["name"] == "bc"
    assert [(v["version"], v["aliases"]) for v in doc["versions"]] == [
        (1, []),
        (2, ["challenger"]),
        (3, ["champion"]),
    ]
    metrics = doc["versions"][0]["metrics"]
    assert set(metrics) == {
        "roc_auc",
        "average_precision",
        "log_loss",
        "accuracy",
        "f1",
        "precision",
        "recall",
    }
    assert 0.9 < metrics["roc_auc"] <= 1.0
    assert doc["versions"][0]["created"].startswith("20")

    everything = json.loads(cli("models", "--json").stdout)
    assert [m["name"] for m in everything["models"]] == ["bc"]
    table = cli("models")
    assert "champion" in table.stdout and "challenger" in table.stdout


def test_empty_registry_lists_nothing(cli: Callable[..., Result]) -> None:
    result = cli("models", "--json")
    assert result.code == 0 and json.loads(result.stdout) == {"models": []}


def test_failed_registration_leaves_nothing(home: Path, cancer: tuple[Path, pd.DataFrame]) -> None:
    path, _ = cancer
    result = fit(path, home, name="broken", model="logistic", folds=3)
    registry = ModelRegistry(Settings(home=home))

    class Unpicklable:
        def __reduce__(self) -> tuple[object, ...]:
            raise RuntimeError("cannot pickle")

    with pytest.raises(Exception, match="cannot pickle"):
        registry.register(
            "broken",
            Unpicklable(),
            files={},
            metrics={},
            params={},
            tags={},
            input_example=pd.DataFrame({"a": [1.0]}),
        )
    assert "broken" not in registry.names()
    from mlflow.entities import ViewType

    runs = registry.client.search_runs(
        [e.experiment_id for e in registry.client.search_experiments()],
        run_view_type=ViewType.ACTIVE_ONLY,
    )
    assert runs == []
    assert result.pipeline is not None
