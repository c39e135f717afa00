"""Serving a scikit-learn model logged with plain MLflow (not trained by mlcanary).

The models are logged and registered by MLflow's own API in the test, in both
serialisations MLflow writes (skops, its default, and cloudpickle); a real server answers
``tritonclient.http`` in JSON and binary, and its answers must equal the model's own.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import tritonclient.http as triton

from mlcanary.config import Settings
from mlcanary.errors import InvalidInput, NotFound
from mlcanary.models.adapter import open_version
from mlcanary.models.attach import attach_reference
from mlcanary.models.foreign import MlflowModel
from mlcanary.monitor.watch import Monitor, WindowPlan, load_facts
from mlcanary.registry.versions import ModelRegistry
from mlcanary.serve.validation import columns_from_frame
from mlcanary.store.database import Store
from mlcanary.store.records import PredictionRecord
from tests.models.plain import fitted_pipeline, log_plain, plain_table
from tests.serve.conftest import free_port, registered_churn, running_server


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, pd.DataFrame]:
    home = tmp_path_factory.mktemp("plain") / "home"
    frame, target = plain_table(600, seed=4)
    model = fitted_pipeline(frame, target)
    log_plain(home, "plain", model, frame)  # skops, MLflow's default
    log_plain(home, "pickled", model, frame, serialization="cloudpickle")
    log_plain(home, "unsigned", model, frame, signed=False)
    log_plain(home, "referenced", model, frame)
    frame.assign(churned=target).to_csv(home.parent / "held_out.csv", index=False)
    from lightgbm import LGBMClassifier

    numbers = frame[["amount", "visits"]]
    boosted = LGBMClassifier(n_estimators=20, verbose=-1).fit(numbers, target)
    log_plain(home, "boosted", boosted, numbers, flavour="lightgbm")
    return home, {"plain": model, "pickled": model, "boosted": boosted}, frame


KINDS = {"amount": "FP64", "visits": "INT64", "plan": "BYTES", "mobile": "BOOL"}


def triton_inputs(rows: pd.DataFrame, binary: bool) -> list[Any]:
    tensors = []
    for name, kind in ((n, KINDS[n]) for n in rows.columns):
        values = rows[name].to_numpy()
        array = (values.astype(object) if kind == "BYTES" else values).reshape(-1)
        tensor = triton.InferInput(name, [len(rows)], kind)
        tensor.set_data_from_numpy(array, binary_data=binary)
        tensors.append(tensor)
    return tensors


def test_the_signature_and_classes_come_from_mlflow_and_the_model(
    home: tuple[Path, dict[str, Any], pd.DataFrame],
) -> None:
    root, models, frame = home
    model = models["plain"]
    opened = open_version(ModelRegistry(Settings(home=root)), "plain", "champion")
    assert isinstance(opened, MlflowModel)
    signature = opened.signature
    assert [(c.name, c.kind, c.datatype) for c in signature.columns] == [
        ("amount", "numeric", "FP64"), ("visits", "integer", "INT64"),
        ("plan", "categorical", "BYTES"), ("mobile", "boolean", "BOOL")]
    assert signature.task == "classification" and signature.classes == [0, 1]
    assert len(opened.sample()) == 5 and len(opened.reference()) == 0
    proba = opened.native().predict(frame.head(40)).proba
    np.testing.assert_allclose(proba, model.predict_proba(frame.head(40)), rtol=0, atol=1e-12)


def test_served_plain_models_answer_as_themselves_over_tritonclient(
    home: tuple[Path, dict[str, Any], pd.DataFrame],
) -> None:
    root, models, frame = home
    names = ["plain", "pickled", "boosted"]  # skops, cloudpickle, LightGBM: one server
    with running_server(root, names) as server:
        client = triton.InferenceServerClient(server.url.removeprefix("http://"))
        for name in names:
            model = models[name]
            rows = frame.sample(25, random_state=1)
            if name == "boosted":
                rows = rows[["amount", "visits"]]
            for binary in (False, True):
                outputs = [triton.InferRequestedOutput(n, binary_data=binary)
                           for n in ("predict", "probabilities")]
                result = client.infer(name, triton_inputs(rows, binary), outputs=outputs)
                np.testing.assert_allclose(result.as_numpy("probabilities"),
                                           model.predict_proba(rows), rtol=0, atol=1e-6)
                np.testing.assert_array_equal(result.as_numpy("predict"), model.predict(rows))
            meta = client.get_model_metadata(name)
            assert [(i["name"], i["datatype"]) for i in meta["inputs"]] == [
                (n, KINDS[n]) for n in rows.columns]
            with pytest.raises(triton.InferenceServerException, match="visits"):
                client.infer(name, triton_inputs(rows.drop(columns="visits"), False))


def test_a_model_without_a_signature_is_refused_saying_how_to_log_one(
    home: tuple[Path, dict[str, Any], pd.DataFrame],
) -> None:
    root, _, _ = home
    with pytest.raises(InvalidInput, match=r"model 'unsigned' version 1: an MLflow model "
                                           r"without a signature; log it with one: .*"
                                           r"infer_signature"):
        open_version(ModelRegistry(Settings(home=root)), "unsigned", 1)
    done = subprocess.run(
        [sys.executable, "-m", "mlcanary", "serve", "unsigned", "--port", str(free_port())],
        env={**os.environ, "MLCANARY_HOME": str(root)}, capture_output=True, text=True,
        timeout=120)
    assert done.returncode == 2, done.stderr
    assert "without a signature" in done.stderr and "Traceback" not in done.stderr


def test_a_lightgbm_booster_without_the_scikit_learn_api_is_refused(tmp_path: Path) -> None:
    import lightgbm

    frame, target = plain_table(200, seed=7)
    numbers = frame[["amount", "visits"]].astype(float)
    booster = lightgbm.train({"objective": "binary", "verbose": -1},
                             lightgbm.Dataset(numbers, target), num_boost_round=5)
    log_plain(tmp_path / "home", "booster", booster, numbers, flavour="lightgbm")
    with pytest.raises(InvalidInput, match=r"model 'booster' version 1: a Booster \(flavour "
                                           r"lightgbm\): not served yet; expected a model "
                                           r"with the scikit-learn API"):
        open_version(ModelRegistry(Settings(home=tmp_path / "home")), "booster", 1)


def test_a_flavour_not_served_yet_is_refused_naming_it(tmp_path: Path) -> None:
    (tmp_path / "MLmodel").write_text("flavors:\n  python_function:\n    loader_module: x\n")
    with pytest.raises(InvalidInput, match=r"model 'm': an MLflow model of flavour\(s\) "
                                           r"python_function: not served yet"):
        from mlcanary.models.adapter import open_model

        open_model(tmp_path, "model 'm'")


def test_a_model_whose_loader_needs_a_missing_package_is_refused_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "code"
    package.mkdir()
    (package / "team_models.py").write_text(
        "from sklearn.linear_model import LogisticRegression\n\n\n"
        "class TeamClassifier(LogisticRegression):\n    pass\n")
    monkeypatch.syspath_prepend(str(package))
    from team_models import TeamClassifier  # type: ignore[import-not-found]

    frame, target = plain_table(200, seed=6)
    numbers = frame[["amount", "visits"]]
    model = TeamClassifier().fit(numbers, target)
    log_plain(tmp_path / "home", "team", model, numbers, serialization="cloudpickle")
    done = subprocess.run(  # a server without the team's package on its path
        [sys.executable, "-m", "mlcanary", "serve", "team", "--port", str(free_port())],
        env={**os.environ, "MLCANARY_HOME": str(tmp_path / "home")}, capture_output=True,
        text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "needs the package 'team_models', which is not installed" in done.stderr
    assert "Traceback" not in done.stderr


def logged(registry: ModelRegistry, name: str, rows: pd.DataFrame,
           t0: float) -> list[PredictionRecord]:
    """One-row requests of version 1 answered a second apart, as the server logs them."""
    opened = open_version(registry, name, 1)
    columns = columns_from_frame(rows, opened.signature, "missing")
    prediction = opened.native().predict(columns)
    assert prediction.proba is not None
    return [PredictionRecord(f"{name}-{k}", t0 + k, name, 1,
                             {n: v[k:k + 1] for n, v in columns.items()},
                             prediction.predicted[k:k + 1], prediction.proba[k:k + 1],
                             opened.signature.classes, 1.0)
            for k in range(len(rows))]


def test_the_monitor_skips_the_drift_of_a_version_without_a_reference_and_says_so_once(
    home: tuple[Path, dict[str, Any], pd.DataFrame], tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    root, _, frame = home
    registry = ModelRegistry(Settings(home=root))
    t0 = 1_800_000_000.0
    records = logged(registry, "plain", frame.head(600), t0)
    plan = WindowPlan(rows=200, seconds=600, min_rows=100, settle_seconds=2)
    with Store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        store.write_predictions(records)
        monitor = Monitor(store, registry, ["plain"], plan=plan)
        with caplog.at_level(logging.WARNING, logger="mlcanary.monitor.watch"):
            assert monitor.tick(now=t0 + 5000) == []
            assert monitor.tick(now=t0 + 6000) == []
        said = [r.getMessage() for r in caplog.records if "no reference sample" in r.getMessage()]
        assert said == ["monitor: plain v1 has no reference sample (a model mlcanary did not "
                        "train); its drift is not analysed until one is attached: mlcanary "
                        "reference plain DATA --version 1"]
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def mlcanary(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mlcanary", *args],
                          env={**os.environ, "MLCANARY_HOME": str(root)}, capture_output=True,
                          text=True, timeout=300, cwd=root.parent)


def test_mlcanary_reference_attaches_what_the_monitor_and_quality_gates_read(
    home: tuple[Path, dict[str, Any], pd.DataFrame], tmp_path: Path,
) -> None:
    from sklearn.metrics import roc_auc_score

    root, models, frame = home
    done = mlcanary(root, "reference", "referenced", "held_out.csv", "--target", "churned",
                    "--rows", "400")
    assert done.returncode == 0, done.stderr
    assert "attached a reference of 400 of 600 rows to referenced version 1" in done.stdout
    registry = ModelRegistry(Settings(home=root))
    facts = load_facts(registry, "referenced", 1)
    assert facts.reference is not None
    held = pd.read_csv(root.parent / "held_out.csv")
    expected = roc_auc_score(held["churned"], models["plain"].predict_proba(frame)[:, 1])
    assert facts.baseline["roc_auc"] == pytest.approx(expected, abs=1e-9)
    importance = open_version(registry, "referenced", 1, predictor=False).importance()
    assert set(importance) == {"amount", "visits", "plan", "mobile"}
    assert sum(importance.values()) == pytest.approx(1.0)
    assert all(share > 0 for share in importance.values())  # the label depends on each
    sample = open_version(registry, "referenced", 1, predictor=False).reference()
    assert len(sample) == 400 and {"__score__0", "__score__1"} <= set(sample.columns)

    # The monitor now analyses this version's windows: a tripled amount is flagged.
    t0 = 1_800_000_000.0
    records = logged(registry, "referenced", frame.assign(amount=frame.amount * 3), t0)
    with Store(f"sqlite:///{tmp_path / 'store.db'}") as store:
        store.write_predictions(records)
        monitor = Monitor(store, registry, ["referenced"],
                          plan=WindowPlan(rows=300, seconds=600, min_rows=100, settle_seconds=2))
        drift = [s for s in monitor.tick(now=t0 + 5000) if s.kind == "drift"]
    assert len(drift) == 2 and all(s.flagged for s in drift)
    assert all("amount" in s.payload["drifted_columns"] for s in drift)


def test_mlcanary_reference_refuses_bad_input_naming_it(
    home: tuple[Path, dict[str, Any], pd.DataFrame],
) -> None:
    root, _, frame = home
    registry = ModelRegistry(Settings(home=root))
    labelled = frame.assign(churned=0)
    cases = [
        (frame.drop(columns="mobile"), None, r"data: missing columns \['mobile'\]"),
        (labelled, "label", "--target: no column 'label' in the data"),
        (frame.assign(churned="maybe"), "churned",
         r"--target: labels \['maybe'\] are not among the model's classes"),
        (labelled.assign(churned=np.nan), "churned", "--target: 600 missing value"),
    ]
    for data, target, message in cases:
        with pytest.raises(InvalidInput, match=message):
            attach_reference(registry, "referenced", 1, data, target=target)
    with pytest.raises(NotFound, match="'referenced'"):
        attach_reference(registry, "referenced", 9, labelled)
    frame.drop(columns="mobile").to_csv(root.parent / "no_mobile.csv", index=False)
    done = mlcanary(root, "reference", "referenced", "no_mobile.csv")  # the CLI: exit 2
    assert done.returncode == 2, done.stderr
    assert "data: missing columns ['mobile']" in done.stderr and "Traceback" not in done.stderr


def test_a_version_mlcanary_trained_keeps_its_own_reference(tmp_path: Path) -> None:
    home = registered_churn(tmp_path, rows=300, seed=8)
    with pytest.raises(InvalidInput, match=r"model 'churn' version 1: trained by mlcanary"):
        attach_reference(ModelRegistry(Settings(home=home)), "churn", 1, pd.DataFrame())
