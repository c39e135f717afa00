"""Shadow comparison on paired rows: agreement, score differences, paired quality."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlcanary.control.shadow import shadow_summary, wilson
from mlcanary.registry.profile import PREDICTION_COLUMN, SCORE_PREFIX


def pairs(champion: dict[str, list], challenger: dict[str, list], label: list) -> pd.DataFrame:
    frame = pd.DataFrame({**{f"champion{k}": v for k, v in champion.items()},
                          **{f"challenger{k}": v for k, v in challenger.items()}})
    return frame.assign(label=label)


def test_binary_agreement_differences_and_paired_accuracy() -> None:
    p = pairs({PREDICTION_COLUMN: [1, 0, 1, 0], f"{SCORE_PREFIX}0": [0.2, 0.9, 0.4, 0.6],
               f"{SCORE_PREFIX}1": [0.8, 0.1, 0.6, 0.4]},
              {PREDICTION_COLUMN: [1, 1, 1, 0], f"{SCORE_PREFIX}0": [0.1, 0.4, 0.4, 0.7],
               f"{SCORE_PREFIX}1": [0.9, 0.6, 0.6, 0.3]},
              label=[1, 0, None, 1.0])
    summary = shadow_summary(p)
    assert summary is not None and summary["pairs"] == 4
    assert summary["agreement"]["rate"] == 0.75
    assert (summary["agreement"]["ci_low"], summary["agreement"]["ci_high"]) == wilson(3, 4)
    assert summary["difference_of"] == "probability of class 1"
    assert summary["difference"]["mean"] == pytest.approx(np.mean([0.1, 0.5, 0.0, -0.1]))
    # Labels 1, 0, 1.0 on three rows: 1.0 counts as the class 1.
    assert summary["labelled"] == {"rows": 3, "champion": {"accuracy": pytest.approx(2 / 3)},
                                   "challenger": {"accuracy": pytest.approx(1 / 3)}}


def test_three_classes_differ_by_total_variation() -> None:
    scores = {f"{SCORE_PREFIX}{c}": v for c, v in zip("abc", ([0.5], [0.3], [0.2]), strict=True)}
    moved = {f"{SCORE_PREFIX}{c}": v for c, v in zip("abc", ([0.2], [0.3], [0.5]), strict=True)}
    summary = shadow_summary(pairs({PREDICTION_COLUMN: ["a"], **scores},
                                   {PREDICTION_COLUMN: ["c"], **moved}, [None]))
    assert summary is not None and summary["agreement"]["rate"] == 0.0
    assert summary["difference"]["mean"] == pytest.approx(0.3)
    assert "labelled" not in summary


def test_regression_compares_values_and_errors() -> None:
    summary = shadow_summary(pairs({PREDICTION_COLUMN: [10.0, 20.0]},
                                   {PREDICTION_COLUMN: [12.0, 19.0]}, [11.0, 20.0]))
    assert summary is not None and "agreement" not in summary
    assert summary["difference_of"] == "predicted value"
    assert summary["difference"]["mean"] == pytest.approx(0.5)
    assert summary["labelled"]["champion"] == {"mae": pytest.approx(0.5)}
    assert summary["labelled"]["challenger"] == {"mae": pytest.approx(1.0)}


def test_no_pairs_is_no_summary() -> None:
    assert shadow_summary(pd.DataFrame()) is None
