"""The default LightGBM is at least as good as a plain one, on data it was not tuned on.

Both sides use the same stratified 5-fold split (shuffled, seed 0). The margin 0.005 is
the issue's; fold-to-fold standard deviations of ROC-AUC here are 0.006-0.007, so
the test is sensitive to a real loss of quality in the defaults.
"""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import StratifiedKFold, cross_val_score

from mlcanary.config import Settings
from mlcanary.train.fit import train
from mlcanary.train.spec import TrainSpec
from tests.conftest import shared_csv, write_csv

MARGIN = 0.005


def plain_lightgbm_auc(frame: pd.DataFrame, target: str) -> float:
    X, y = frame.drop(columns=[target]), frame[target]
    cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    model = lgb.LGBMClassifier(verbose=-1, n_jobs=1)
    return float(cross_val_score(model, X, y, cv=cv, scoring="roc_auc").mean())


def mlcanary_auc(path: Path, target: str, home: Path) -> float:
    spec = TrainSpec.parse(data=path, target=target, seed=0)
    return train(spec, Settings(home=home)).metrics["roc_auc"][0]


@pytest.mark.slow
def test_breast_cancer(tmp_path: Path) -> None:
    frame = load_breast_cancer(as_frame=True).frame
    path = write_csv(tmp_path / "breast_cancer.csv", frame)
    ours, plain = mlcanary_auc(path, "target", tmp_path), plain_lightgbm_auc(frame, "target")
    assert ours >= plain - MARGIN, (ours, plain)


@pytest.mark.slow
def test_weather(tmp_path: Path) -> None:
    path = shared_csv("weather.csv")
    frame = pd.read_csv(path)
    ours, plain = mlcanary_auc(path, "target", tmp_path), plain_lightgbm_auc(frame, "target")
    assert ours >= plain - MARGIN, (ours, plain)
