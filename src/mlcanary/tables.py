"""Rich tables the commands print: a training run's metrics, a model's versions, feedback."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from mlcanary.types import METRIC_NAMES


def metrics_table(result: Any) -> Table:
    """Model (mean ± std over folds) beside the linear model and the baseline."""
    from mlcanary.types import LOWER_IS_BETTER

    table = Table(title=f"{result.spec.model_name}: {result.plan} cross-validation")
    for column in ("metric", f"{result.spec.model} (mean ± std)", "linear", "baseline"):
        table.add_column(column, justify="right" if column != "metric" else "left")
    for metric, (mean, std) in result.metrics.items():
        arrow = "↓" if metric in LOWER_IS_BETTER else "↑"
        table.add_row(
            f"{metric} {arrow}",
            f"{mean:.4f} ± {std:.4f}",
            f"{result.linear[metric][0]:.4f}",
            f"{result.baseline[metric][0]:.4f}",
        )
    return table


def versions_table(name: str, versions: list[Any]) -> Table:
    """One row per version: aliases, date, model family and CV means."""
    keys = sorted({k for v in versions for k in v.metrics}, key=_metric_order)
    table = Table(title=name)
    for column in ("version", "aliases", "created", "model", *keys):
        table.add_column(column)
    for v in versions:
        table.add_row(
            str(v.version),
            ", ".join(sorted(v.aliases)),
            v.created.strftime("%Y-%m-%d %H:%M"),
            v.tags.get("mlcanary.model", ""),
            *(f"{v.metrics[k]:.4f}" if k in v.metrics else "" for k in keys),
        )
    return table


def feedback_table(name: str, result: Any) -> Table:
    """What one batch of feedback did (a ``FeedbackResult``)."""
    table = Table(title=f"{name}: feedback")
    for column in ("matched", "new", "changed", "unchanged", "unknown"):
        table.add_column(column, justify="right")
    table.add_row(
        *(str(n) for n in (result.matched, result.new, result.changed, result.unchanged)),
        str(len(result.unknown)),
    )
    return table


def _metric_order(name: str) -> int:
    return METRIC_NAMES.index(name) if name in METRIC_NAMES else len(METRIC_NAMES)
