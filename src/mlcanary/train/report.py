"""A training run as one self-contained HTML page: what was fitted, how well, and why.

Every chart is drawn from out-of-fold predictions (rows scored by a model that did not
see them), so the pictures agree with the cross-validated metrics. plotly.js is
embedded once, inline, so the file opens offline; every user-provided string is
escaped, in the page and in the chart labels (plotly reads labels as pseudo-HTML).
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve

from mlcanary.train.fit import TrainResult
from mlcanary.types import LOWER_IS_BETTER

MAX_POINTS = 5000
"""Predicted-vs-actual scatter points, at most (a seeded subsample beyond that)."""
MAX_BARS = 40
"""Feature-importance bars, at most (the largest shares)."""
CALIBRATION_BINS = 10
PLOT_CONFIG = {"displaylogo": False, "responsive": True}
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0;
       color: #1d2330; background: #f5f6f8; }
main { max-width: 1180px; margin: 0 auto; padding: 24px; }
h1 { margin: 0 0 4px; font-size: 26px; } h2 { font-size: 18px; margin: 28px 0 10px; }
section { background: #fff; border: 1px solid #e1e4ea; border-radius: 8px; padding: 16px; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 6px 18px; margin: 0; }
dt { color: #5b6474; } dd { margin: 0; }
table { border-collapse: collapse; width: 100%; font-size: 14px; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid #eceef2; }
th { color: #5b6474; font-weight: 600; } td.num { font-variant-numeric: tabular-nums; }
.verdict { display: inline-block; padding: 3px 10px; border-radius: 12px; font-weight: 600; }
.good { background: #dcf5e3; color: #17663a; } .warn { background: #fdecc8; color: #7a4b00; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr));
          gap: 16px; align-items: start; }
.chart { background: #fff; border: 1px solid #e1e4ea; border-radius: 8px; padding: 8px;
         min-width: 0; }
.muted { color: #5b6474; } code { font-size: 13px; }
"""


def render_report(result: TrainResult, *, title: str) -> str:
    """Return one HTML document showing ``result``'s evaluation, with plotly.js inline."""
    divs = [
        fig.to_html(include_plotlyjs=(i == 0), full_html=False, config=PLOT_CONFIG, div_id=f"c{i}")
        for i, fig in enumerate(_charts(result))
    ]
    charts = "".join(f'<div class="chart">{d}</div>' for d in divs)
    e = html.escape
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{e(title)} · mlcanary report</title><style>{CSS}</style></head><body><main>"
        f'<h1>{e(title)}</h1><p class="muted">mlcanary training report</p>'
        f"<section>{_header(result)}</section>"
        f"<h2>Metrics (cross-validated)</h2><section>{_metrics_table(result)}</section>"
        f"<h2>Bias / variance</h2><section>{_verdict(result)}</section>"
        f'<h2>Charts (out-of-fold predictions)</h2><div class="charts">{charts}</div>'
        f"<h2>Columns</h2><section>{_columns_table(result)}</section>"
        "</main></body></html>\n"
    )


# ---------------------------------------------------------------- page sections


def _header(result: TrainResult) -> str:
    e, spec, sig, fp = html.escape, result.spec, result.signature, result.fingerprint
    task: str = sig.task
    if sig.classes is not None:
        kind = "binary" if len(sig.classes) == 2 else f"{len(sig.classes)} classes"
        task = f"{task} ({kind}: {', '.join(str(c) for c in sig.classes)})"
    rows: list[tuple[str, str]] = [
        ("Task", e(task)),
        ("Target", f"<code>{e(sig.target)}</code>"),
        ("Model family", e(spec.model)),
        ("Cross-validation", e(result.plan)),
        (
            "Data",
            f"<code>{e(spec.data.name)}</code>: {fp.rows:,} rows × {fp.columns:,} columns, "
            f"sha256 <code>{e(fp.sha256[:12])}</code>",
        ),
    ]
    t = result.threshold
    if t is not None:
        rows.append(
            (
                "Threshold",
                f"{t.value:.4f}: {e(t.rule)} (precision {t.precision:.3f}, "
                f"recall {t.recall:.3f}, F1 {t.f1:.3f})",
            )
        )
    if result.balanced:
        rows.append(("Class weights", "balanced (the target is imbalanced)"))
    if result.params:
        tuned = ", ".join(f"{k}={_fmt_param(v)}" for k, v in sorted(result.params.items()))
        rows.append(("Tuned parameters", f"<code>{e(tuned)}</code> ({spec.trials} trials)"))
    return "<dl>" + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows) + "</dl>"


def _metrics_table(result: TrainResult) -> str:
    head = "<tr><th>Metric</th><th>Model</th><th>Linear model</th><th>Baseline</th></tr>"
    body = []
    for name, (mean, std) in result.metrics.items():
        better = "lower is better" if name in LOWER_IS_BETTER else "higher is better"
        others = [_fmt(s.get(name, (np.nan, np.nan))[0]) for s in (result.linear, result.baseline)]
        body.append(
            f'<tr><td>{html.escape(name)} <span class="muted">({better})</span></td>'
            f'<td class="num">{_fmt(mean)} ± {_fmt(std)}</td>'
            + "".join(f'<td class="num">{v}</td>' for v in others)
            + "</tr>"
        )
    note = (
        f'<p class="muted">Mean ± standard deviation over {result.spec.folds} folds; '
        "linear model and baseline (prior / mean) show their means.</p>"
    )
    return f"<table>{head}{''.join(body)}</table>{note}"


def _verdict(result: TrainResult) -> str:
    d = result.diagnosis
    css = "good" if d.verdict == "good fit" else "warn"
    return (
        f'<p><span class="verdict {css}">{html.escape(d.verdict)}</span></p>'
        f"<p>{html.escape(d.reason)}</p>"
    )


def _columns_table(result: TrainResult) -> str:
    e = html.escape
    rows = "".join(
        f"<tr><td><code>{e(c.name)}</code></td><td>{e(c.kind)}</td>"
        f"<td>{'yes' if c.used else 'no'}</td><td>{e(c.note)}</td></tr>"
        for c in result.signature.columns
    )
    return f"<table><tr><th>Name</th><th>Kind</th><th>Used</th><th>Note</th></tr>{rows}</table>"


def _fmt(value: float) -> str:
    if not np.isfinite(value):
        return "—"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.2f}" if abs(value) >= 10 else f"{value:.4f}"


def _fmt_param(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


# ---------------------------------------------------------------- charts


def _charts(result: TrainResult) -> list[go.Figure]:
    held = ~np.isnan(result.oof if result.oof.ndim == 1 else result.oof[:, 0])
    y, oof = result.y[held], result.oof[held]
    if result.signature.classes is None:
        scored = [_predicted_vs_actual(y, oof, result.spec.seed), _residuals(y, oof)]
    else:
        labels = [_label(c) for c in result.signature.classes]
        y_idx = pd.Index(result.signature.classes).get_indexer(y)
        scored = [
            _roc(y_idx, oof, labels),
            _precision_recall(y_idx, oof, labels, result),
            _confusion(y_idx, oof, labels, result),
            _calibration(y_idx, oof),
        ]
    return [*scored, _learning_curve(result), _importance(result)]


def _figure(title: str, x: str, y: str, height: int = 420, **layout: Any) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(
        title={"text": title},
        xaxis_title=x,
        yaxis_title=y,
        height=height,
        template="plotly_white",
        margin={"l": 60, "r": 20, "t": 50, "b": 50},
        legend={"bgcolor": "rgba(255,255,255,0.7)", "traceorder": "normal"},
        **layout,
    )
    return fig


def _label(value: object) -> str:
    return html.escape(str(value))


def _one_vs_rest(y_idx: np.ndarray, labels: list[str]) -> list[tuple[int, str]]:
    """(class index, label) of the curves to draw: the positive class when binary, else all
    classes that are both present and absent among the scored rows."""
    wanted = [1] if len(labels) == 2 else range(len(labels))
    return [(k, labels[k]) for k in wanted if 0 < (y_idx == k).sum() < len(y_idx)]


def _roc(y_idx: np.ndarray, oof: np.ndarray, labels: list[str]) -> go.Figure:
    fig = _figure(
        "ROC curve",
        "False positive rate",
        "True positive rate",
        legend_x=0.98,
        legend_xanchor="right",
        legend_y=0.02,
        legend_yanchor="bottom",
    )
    fig.add_scatter(
        x=[0, 1], y=[0, 1], mode="lines", name="chance", line={"dash": "dash", "color": "#999"}
    )
    for n, (k, label) in enumerate(_one_vs_rest(y_idx, labels)):
        fpr, tpr, _ = skm.roc_curve(y_idx == k, oof[:, k])
        name = f"{label}: AUC {skm.auc(fpr, tpr):.3f}"
        fig.add_scatter(x=fpr, y=tpr, mode="lines", name=name, line={"color": COLORS[n % 7]})
    return fig


def _precision_recall(
    y_idx: np.ndarray, oof: np.ndarray, labels: list[str], result: TrainResult
) -> go.Figure:
    fig = _figure(
        "Precision-recall curve",
        "Recall",
        "Precision",
        legend_x=0.02,
        legend_y=0.02,
        legend_yanchor="bottom",
    )
    for n, (k, label) in enumerate(_one_vs_rest(y_idx, labels)):
        precision, recall, _ = skm.precision_recall_curve(y_idx == k, oof[:, k])
        ap = skm.average_precision_score(y_idx == k, oof[:, k])
        fig.add_scatter(
            x=recall,
            y=precision,
            mode="lines",
            name=f"{label}: AP {ap:.3f}",
            line={"color": COLORS[n % 7]},
        )
    t = result.threshold
    if t is not None:
        fig.add_scatter(
            x=[t.recall],
            y=[t.precision],
            mode="markers",
            name=f"threshold {t.value:.3f}",
            marker={"size": 12, "color": "#d62728", "symbol": "x"},
        )
    return fig


def _confusion(
    y_idx: np.ndarray, oof: np.ndarray, labels: list[str], result: TrainResult
) -> go.Figure:
    if len(labels) == 2:
        cut = result.threshold.value if result.threshold is not None else 0.5
        predicted, how = (oof[:, 1] >= cut).astype(int), f"threshold {cut:.3f}"
    else:
        predicted, how = oof.argmax(axis=1), "most probable class"
    counts = skm.confusion_matrix(y_idx, predicted, labels=list(range(len(labels))))
    totals = np.maximum(counts.sum(axis=1), 1)
    text = [[f"{c:,}<br>{c / t:.0%}" for c in row] for row, t in zip(counts, totals, strict=True)]
    fig = _figure(f"Confusion matrix ({how})", "Predicted", "Actual", height=420)
    fig.add_heatmap(
        z=counts,
        x=labels,
        y=labels,
        text=text,
        texttemplate="%{text}",
        colorscale="Blues",
        showscale=False,
        hovertemplate="actual %{y}<br>predicted %{x}<br>%{z} rows<extra></extra>",
    )
    fig.update_xaxes(type="category", side="bottom")
    fig.update_yaxes(type="category", autorange="reversed")
    return fig


def _calibration(y_idx: np.ndarray, oof: np.ndarray) -> go.Figure:
    if oof.shape[1] == 2:
        hit, prob, what = y_idx == 1, oof[:, 1], "positive class"
    else:
        hit, prob, what = y_idx == oof.argmax(axis=1), oof.max(axis=1), "top class"
    fig = _figure(
        f"Calibration ({what})",
        "Mean predicted probability",
        "Observed frequency",
        legend_x=0.02,
        legend_y=0.98,
    )
    fig.add_scatter(
        x=[0, 1],
        y=[0, 1],
        mode="lines",
        name="perfectly calibrated",
        line={"dash": "dash", "color": "#999"},
    )
    observed, predicted = calibration_curve(hit, prob, n_bins=CALIBRATION_BINS, strategy="quantile")
    fig.add_scatter(
        x=predicted, y=observed, mode="lines+markers", name="model", line={"color": COLORS[0]}
    )
    return fig


def _learning_curve(result: TrainResult) -> go.Figure:
    d = result.diagnosis
    fig = _figure(
        f"Learning curve ({d.metric})",
        "Training rows",
        d.metric,
        legend_x=0.98,
        legend_xanchor="right",
        legend_y=0.02,
        legend_yanchor="bottom",
    )
    rows = [p.rows for p in d.points]
    for n, (name, mean, std) in enumerate(
        [
            ("train", [p.train for p in d.points], [p.train_std for p in d.points]),
            ("validation", [p.validation for p in d.points], [p.validation_std for p in d.points]),
        ]
    ):
        color, m, s = COLORS[n], np.array(mean), np.array(std)
        fig.add_scatter(
            x=rows,
            y=m + s,
            mode="lines",
            line={"width": 0, "color": color},
            showlegend=False,
            hoverinfo="skip",
        )
        fig.add_scatter(
            x=rows,
            y=m - s,
            mode="lines",
            line={"width": 0, "color": color},
            fill="tonexty",
            fillcolor=_rgba(color, 0.2),
            showlegend=False,
            hoverinfo="skip",
        )
        fig.add_scatter(x=rows, y=m, mode="lines+markers", name=name, line={"color": color})
    return fig


def _importance(result: TrainResult) -> go.Figure:
    used = {c.name for c in result.signature.columns if c.used}
    shares = sorted(((v, c) for c, v in result.importance.items() if c in used), reverse=True)
    shown = shares[:MAX_BARS][::-1]  # plotly draws the first bar at the bottom
    more = f", top {MAX_BARS} of {len(shares)}" if len(shares) > MAX_BARS else ""
    fig = _figure(
        f"Feature importance (permutation{more})",
        "Share of importance",
        "",
        height=max(320, 120 + 22 * len(shown)),
        showlegend=False,
    )
    fig.add_bar(
        x=[v for v, _ in shown],
        y=[_label(c) for _, c in shown],
        orientation="h",
        marker={"color": COLORS[0]},
        hovertemplate="%{y}: %{x:.1%}<extra></extra>",
    )
    fig.update_xaxes(tickformat=".0%")
    fig.update_yaxes(type="category", automargin=True)
    return fig


def _predicted_vs_actual(y: np.ndarray, predicted: np.ndarray, seed: int) -> go.Figure:
    rows = np.arange(len(y))
    if len(rows) > MAX_POINTS:
        rows = np.sort(np.random.default_rng(seed).choice(rows, MAX_POINTS, replace=False))
    sample = f" ({MAX_POINTS:,} of {len(y):,} rows)" if len(y) > MAX_POINTS else ""
    fig = _figure(
        f"Predicted vs actual{sample}", "Actual", "Predicted", legend_x=0.02, legend_y=0.98
    )
    low = float(min(y.min(), predicted.min())) if len(y) else 0.0
    high = float(max(y.max(), predicted.max())) if len(y) else 1.0
    fig.add_scatter(
        x=[low, high],
        y=[low, high],
        mode="lines",
        name="perfect prediction",
        line={"dash": "dash", "color": "#999"},
    )
    fig.add_scatter(
        x=y[rows],
        y=predicted[rows],
        mode="markers",
        name="rows",
        marker={"size": 5, "opacity": 0.5, "color": COLORS[0]},
    )
    return fig


def _residuals(y: np.ndarray, predicted: np.ndarray) -> go.Figure:
    fig = _figure("Residuals (actual − predicted)", "Residual", "Rows", showlegend=False)
    fig.add_histogram(x=y - predicted, nbinsx=40, marker={"color": COLORS[0]})
    fig.add_vline(x=0, line={"dash": "dash", "color": "#999"})
    return fig


def _rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"
