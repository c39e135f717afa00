"""``train``: from a table and a spec to a fitted, evaluated, explainable model.

Nothing here touches the registry: a ``TrainResult`` is everything a model version
will hold, built in memory, so a failure leaves no half-written version behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import FixedThresholdClassifier
from sklearn.pipeline import Pipeline

from mlcanary.config import Settings
from mlcanary.progress import Steps
from mlcanary.registry.profile import build_profile
from mlcanary.signature import Signature
from mlcanary.train import metrics
from mlcanary.train.curves import (
    CURVE_FOLDS,
    FRACTIONS,
    Diagnosis,
    diagnose,
    full_point,
    learning_curve,
)
from mlcanary.train.data import Fingerprint, fingerprint, read_table
from mlcanary.train.estimators import NEEDS_SCALING, is_imbalanced, make_estimator
from mlcanary.train.evaluate import FoldRun, fold_metrics, run_folds
from mlcanary.train.metrics import Threshold
from mlcanary.train.preprocess import build_preprocessor
from mlcanary.train.schema import check_time_column, infer_signature, require_column
from mlcanary.train.spec import TrainSpec
from mlcanary.train.splits import make_folds
from mlcanary.train.target import prepare_target
from mlcanary.train.tuning import tune

Summary = dict[str, tuple[float, float]]


@dataclass
class TrainResult:
    """Everything a model version holds, before it is registered."""

    spec: TrainSpec
    signature: Signature
    pipeline: Any
    plan: str
    metrics: Summary
    baseline: Summary
    linear: Summary
    per_fold: list[dict[str, float]]
    threshold: Threshold | None
    diagnosis: Diagnosis
    importance: dict[str, float]
    fingerprint: Fingerprint
    profile: dict[str, Any]
    reference: pd.DataFrame
    y: np.ndarray
    oof: np.ndarray
    params: dict[str, Any]
    balanced: bool

    @property
    def means(self) -> dict[str, float]:
        """CV means keyed by scorer-style metric names."""
        return {name: mean for name, (mean, _) in self.metrics.items()}


MIN_REFERENCE_ROWS = 200
"""Fewest held-out rows a ``reference_last`` reference may have; with fewer, every row."""


def _reference_rows(held_out: np.ndarray, last: int | None, warn: Any) -> np.ndarray:
    """The rows the drift reference is drawn from: held out, and among the last ``last``."""
    if last is None:
        return held_out
    recent = np.zeros(len(held_out), dtype=bool)
    recent[-min(last, len(held_out)):] = True
    chosen = held_out & recent
    if chosen.sum() < MIN_REFERENCE_ROWS:
        warn(f"reference: {int(chosen.sum())} held-out rows among the last {last}, fewer than "
             f"{MIN_REFERENCE_ROWS}; every held-out row is used")
        return held_out
    return chosen


def train(spec: TrainSpec, settings: Settings, steps: Steps | None = None) -> TrainResult:
    """Read, validate, cross-validate, diagnose and fit the final model."""
    steps = steps or Steps(None)
    frame = read_table(spec.data)
    print_ = steps.warn
    if spec.time_column:
        order = check_time_column(frame, spec.time_column).argsort(kind="stable").to_numpy()
        frame = frame.iloc[order].reset_index(drop=True)
    if spec.group_column:
        require_column(frame, spec.group_column, "--group-column")
    target = prepare_target(frame, spec.target, spec.task, spec.folds, print_)
    X, y, task = target.X, target.y, target.task
    for column in spec.id_columns:
        require_column(X, column, "--id-column")
    signature = infer_signature(X, spec.target, task, warn=print_, ids=spec.id_columns)
    groups = None
    if spec.group_column:
        groups = X[spec.group_column].astype(str).to_numpy()
        for col in signature.columns:
            if col.name == spec.group_column:
                col.used, col.note = False, "group column: used to form folds, not as a feature"
    classes = np.unique(y) if task == "classification" else None
    signature.classes = (
        [c.item() if isinstance(c, np.generic) else c for c in classes]
        if classes is not None
        else None
    )
    balanced = task == "classification" and is_imbalanced(y)
    if balanced:
        print_("imbalanced target: balanced class weights are used")
    folds, plan = make_folds(
        y, task, spec.folds, ordered_by_time=bool(spec.time_column), groups=groups, seed=spec.seed
    )

    def build(family: str, params: dict[str, Any] | None = None) -> Pipeline:
        prep = build_preprocessor(
            signature,
            scale=NEEDS_SCALING.get(family, True),
            max_onehot=settings.max_onehot_categories,
            seed=spec.seed,
        )
        est = make_estimator(
            family, task, balanced=balanced, seed=spec.seed, threads=settings.threads, params=params
        )
        return Pipeline([("prep", prep), ("model", est)])

    def factory_for(family: str, tuned: bool, advance: Any) -> Any:
        def factory(X_part: pd.DataFrame, y_part: np.ndarray) -> Pipeline:
            if not tuned:
                return build(family)
            params = tune(
                lambda p: build(family, p),
                family,
                X_part,
                y_part,
                task,
                classes,
                trials=spec.trials,
                seed=spec.seed,
                on_trial=advance,
            )
            pipe = build(family, params)
            pipe.tuned_params_ = params
            return pipe

        return factory

    used = signature.names()
    with steps.running():
        tuned = spec.trials > 0
        with steps.stage(
            f"cross-validation: {spec.model}", spec.folds * (1 + spec.trials)
        ) as advance:
            main = run_folds(
                spec.model,
                factory_for(spec.model, tuned, advance),
                X,
                y,
                folds,
                task,
                classes,
                importance_columns=used,
                seed=spec.seed,
                on_fold=advance,
            )
        with steps.stage("baselines: majority/mean, linear", 2 * spec.folds) as advance:
            baseline = run_folds(
                "baseline",
                factory_for("baseline", False, None),
                X,
                y,
                folds,
                task,
                classes,
                on_fold=advance,
            )
            linear = (
                main
                if spec.model == "logistic" and not tuned
                else run_folds(
                    "logistic",
                    factory_for("logistic", False, None),
                    X,
                    y,
                    folds,
                    task,
                    classes,
                    on_fold=advance,
                )
            )
        with steps.stage(
            "learning curve", len(FRACTIONS) * min(CURVE_FOLDS, len(folds))
        ) as advance:
            points = learning_curve(
                factory_for(spec.model, False, None),
                X,
                y,
                folds,
                task,
                classes,
                ordered_by_time=bool(spec.time_column),
                seed=spec.seed,
                on_step=advance,
            )
        threshold = None
        binary = task == "classification" and len(classes) == 2  # type: ignore[arg-type]
        if binary:
            threshold = _threshold(main, y, classes, spec, print_)
        per_fold = fold_metrics(
            main,
            y,
            folds,
            task,
            classes,
            _cross_fitted(main, y, classes, spec, folds) if binary else None,
        )
        # The majority baseline keeps its natural decision (always the majority class);
        # the linear model gets thresholds chosen by the same rule as the model's.
        summaries = [
            metrics.summarise(per_fold),
            metrics.summarise(fold_metrics(baseline, y, folds, task, classes, None)),
            metrics.summarise(
                fold_metrics(
                    linear,
                    y,
                    folds,
                    task,
                    classes,
                    _cross_fitted(linear, y, classes, spec, folds) if binary else None,
                )
            ),
        ]
        primary = metrics.primary_metric(task)
        points.append(
            full_point(
                [len(tr) for tr, _ in folds], main.train_scores, [f[primary] for f in per_fold]
            )
        )
        diagnosis = diagnose(points, summaries[1][primary][0], primary)
        with steps.stage("final fit on all rows", 1 + spec.trials) as advance:
            final = factory_for(spec.model, tuned, advance)(X, y)
            final.fit(X, y)
            advance()
    params = getattr(final, "tuned_params_", {})
    pipeline: Any = final
    if threshold is not None:
        pipeline = FixedThresholdClassifier(FrozenEstimator(final), threshold=threshold.value)
        pipeline.fit(X, y)
    importance = _importance_shares(main, signature)
    held_out = _reference_rows(main.has_prediction, spec.reference_last, print_)
    scores = served_scores(final, X, held_out, task)
    predicted = _labels(scores, classes, threshold)
    profile, reference = build_profile(
        X[held_out].reset_index(drop=True),
        y[held_out],
        scores,
        predicted,
        signature,
        importance,
        max_rows=settings.reference_rows,
        seed=spec.seed,
    )
    return TrainResult(
        spec=spec,
        signature=signature,
        pipeline=pipeline,
        plan=plan,
        metrics=summaries[0],
        baseline=summaries[1],
        linear=summaries[2],
        per_fold=per_fold,
        threshold=threshold,
        diagnosis=diagnosis,
        importance=importance,
        fingerprint=fingerprint(spec.data, frame),
        profile=profile,
        reference=reference,
        y=y,
        oof=main.oof,
        params=params,
        balanced=balanced,
    )


def _threshold(
    run: FoldRun,
    y: np.ndarray,
    classes: Any,
    spec: TrainSpec,
    warn: Any,
    rows: np.ndarray | None = None,
) -> Threshold:
    """The threshold rule applied to out-of-fold scores (of ``rows`` when given)."""
    mask = run.has_prediction if rows is None else rows & run.has_prediction
    positive = (y[mask] == classes[1]).astype(int)
    return metrics.choose_threshold(
        positive,
        run.oof[mask, 1],
        min_precision=spec.min_precision,
        min_recall=spec.min_recall,
        warn=warn,
    )


def _cross_fitted(
    run: FoldRun, y: np.ndarray, classes: Any, spec: TrainSpec, folds: list[Any]
) -> list[float]:
    """Per fold, the threshold chosen on the other folds' scores, so that precision,
    recall and F1 are measured on rows the choice never saw."""
    out = []
    for _, test_idx in folds:
        others = np.ones(len(y), dtype=bool)
        others[test_idx] = False
        out.append(_threshold(run, y, classes, spec, None, others).value)
    return out


def served_scores(final: Any, X: pd.DataFrame, rows: np.ndarray, task: str) -> np.ndarray:
    """What the served pipeline gives on the reference ``rows``: the scores live windows
    are compared with.

    Not the cross-validation folds' out-of-fold scores: those come from five other models
    (trained on less data, each stopped at its own tree count), and their distribution
    differs from the served model's by enough to flag prediction drift on data that never
    changed. The served model saw these rows, so the question is how far its scores on
    them differ from its scores on new rows: for early-stopped LightGBM and the linear
    model, little (on generated data PSI 0.002-0.009 against fresh rows, where the folds'
    scores read 0.04-0.06); a random forest memorises its rows (PSI 0.7), so there each row
    is scored by the trees that did not see it (out of bag).
    """
    estimator = final[-1] if hasattr(final, "steps") else final
    oob = getattr(estimator, "oob_decision_function_", None)
    if oob is None:
        oob = getattr(estimator, "oob_prediction_", None)
    if oob is not None:
        return np.asarray(np.asarray(oob, dtype=float)[rows])
    part = X[rows]
    if task == "regression":
        return np.asarray(final.predict(part), dtype=float)
    return np.asarray(final.predict_proba(part), dtype=float)


def _labels(scores: np.ndarray, classes: Any, threshold: Threshold | None) -> np.ndarray:
    if classes is None:
        return scores
    if threshold is not None:
        return np.asarray(np.where(scores[:, 1] >= threshold.value, classes[1], classes[0]))
    return np.asarray(np.asarray(classes)[scores.argmax(axis=1)])


def _importance_shares(run: FoldRun, signature: Signature) -> dict[str, float]:
    """Mean permutation importance per column, clipped at 0 and normalised to sum to 1."""
    raw = {c: max(0.0, float(np.mean(v))) for c, v in run.importance.items()}
    total = sum(raw.values())
    shares = {c: (v / total if total > 0 else 0.0) for c, v in raw.items()}
    return {c.name: shares.get(c.name, 0.0) for c in signature.columns}
