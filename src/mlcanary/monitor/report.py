"""The drift report: one self-contained HTML page per model (``mlcanary report NAME``).

Signals over time first (drift share and the domain classifier's AUC per window, the
performance metric with its interval against the baseline), then the latest window
column by column: reference and current distributions side by side, with the tests and
effect sizes that decided. plotly.js is inlined once so the file opens offline.
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from mlcanary.models.adapter import open_version
from mlcanary.monitor.detectors import to_numbers
from mlcanary.registry.versions import ModelRegistry
from mlcanary.signature import Signature
from mlcanary.store.database import Store
from mlcanary.store.signals import Signal, SignalLog
from mlcanary.train.report import CSS, PLOT_CONFIG

TOP_CATEGORIES = 15
REFERENCE, CURRENT = "#1f77b4", "#ff7f0e"


def render_drift_report(
    store: Store,
    registry: ModelRegistry,
    name: str,
    *,
    last: int = 50,
    extra: list[tuple[str, Any]] | None = None,
) -> str:
    """The report for the ``last`` windows of ``name``.

    ``extra`` adds (caption, Plotly figure) pairs after the signals chart: the control
    layer's views, such as a shadow rollout's score differences.
    """
    log = SignalLog(store)
    drift = log.latest(name, kind="drift", last=last)
    performance = log.latest(name, kind="performance", last=last)
    figures = [_over_time(drift, performance), *(figure for _, figure in extra or [])]
    table = ""
    if drift:
        latest = drift[-1]
        window = store.read_window(
            name, variant=latest.variant, version=latest.version,
            since=latest.start_ts, until=np.nextafter(latest.end_ts, np.inf),
        )
        signature, sample = _reference(registry, name, latest.version)
        figures.extend(_columns(latest, signature, sample, window))
        table = _tests_table(latest)
    divs = "".join(
        '<div class="chart">'
        + fig.to_html(include_plotlyjs=(i == 0), full_html=False, config=PLOT_CONFIG,
                      div_id=f"c{i}")
        + "</div>"
        for i, fig in enumerate(figures)
    )
    e = html.escape
    summary = " ".join([_summary(drift, performance), *(text for text, _ in extra or [])])
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{e(name)}: drift report</title><style>{CSS}</style></head><body><main>"
        f"<h1>{e(name)}: drift report</h1><p class='muted'>{e(summary)}</p>"
        f"<h2>Signals and latest window</h2><div class='charts'>{divs}</div>"
        f"<h2>Tests of the latest window</h2><section>{table or 'No window yet.'}</section>"
        "</main></body></html>"
    )


def _summary(drift: list[Signal], performance: list[Signal]) -> str:
    flagged = sum(s.flagged for s in drift)
    text = f"{len(drift)} windows analysed, {flagged} with dataset drift."
    if performance:
        p = performance[-1].payload["performance"]
        text += (
            f" Latest performance: {p['metric']} {p['value']:.4f} on {p['n']} labelled rows"
            f" (baseline {p['baseline']:.4f}){', DEGRADED' if p['degraded'] else ''}."
        )
    return text


def _over_time(drift: list[Signal], performance: list[Signal]) -> go.Figure:
    figure = go.Figure()
    ends = [_time(s.end_ts) for s in drift]
    figure.add_scatter(x=ends, y=[s.payload["drift_share"] for s in drift], name="drift share",
                       mode="lines+markers")
    figure.add_scatter(
        x=[t for t, s in zip(ends, drift, strict=True) if s.flagged],
        y=[s.payload["drift_share"] for s in drift if s.flagged],
        name="dataset drift", mode="markers", marker={"color": "#d62728", "size": 12},
    )
    auc = [(s.payload["multivariate"] or {}).get("statistic") for s in drift]
    figure.add_scatter(x=ends, y=auc, name="domain classifier AUC", mode="lines",
                       line={"dash": "dot"})
    if performance:
        times = [_time(s.end_ts) for s in performance]
        values = [s.payload["performance"] for s in performance]
        figure.add_scatter(
            x=times, y=[v["value"] for v in values], name=f"{values[-1]['metric']}",
            mode="lines+markers", yaxis="y2",
            error_y={"type": "data", "symmetric": False,
                     "array": [v["ci_high"] - v["value"] for v in values],
                     "arrayminus": [v["value"] - v["ci_low"] for v in values]},
        )
        figure.add_scatter(x=times, y=[v["baseline"] for v in values], name="CV baseline",
                           mode="lines", yaxis="y2", line={"dash": "dash", "color": "gray"})
    figure.update_layout(
        title="Signals per window", height=380, margin={"t": 50, "b": 40},
        yaxis={"title": "share of importance drifted / AUC", "range": [0, 1.05]},
        yaxis2={"title": "metric", "overlaying": "y", "side": "right"},
        legend={"orientation": "h", "y": -0.2},
    )
    return figure


def _reference(registry: ModelRegistry, name: str, version: int) -> tuple[Signature, pd.DataFrame]:
    model = open_version(registry, name, version, predictor=False)
    return model.signature, model.reference()


def _columns(
    signal: Signal, signature: Signature, sample: pd.DataFrame, window: pd.DataFrame
) -> list[go.Figure]:
    """Reference vs latest window for each column, drifted columns first."""
    drifted = set(signal.payload["drifted_columns"])
    order = sorted(signature.columns, key=lambda c: (c.name not in drifted, not c.used))
    figures = []
    for spec in order:
        if spec.kind == "datetime" or spec.name not in window.columns:
            continue
        title = f"{spec.name}{' (drift)' if spec.name in drifted else ''}"
        figure = go.Figure()
        if spec.kind in ("numeric", "integer", "boolean"):
            for label, values, color in (("reference", sample[spec.name], REFERENCE),
                                         ("latest window", window[spec.name], CURRENT)):
                figure.add_histogram(x=to_numbers(pd.Series(values)), name=label,
                                     histnorm="probability", opacity=0.6,
                                     marker_color=color, nbinsx=40)
            figure.update_layout(barmode="overlay")
        else:
            ref = sample[spec.name].astype(str).value_counts(normalize=True)
            cur = window[spec.name].astype(str).value_counts(normalize=True)
            top = list(dict.fromkeys([*ref.index[:TOP_CATEGORIES], *cur.index[:5]]))
            figure.add_bar(x=top, y=[ref.get(c, 0.0) for c in top], name="reference",
                           marker_color=REFERENCE)
            figure.add_bar(x=top, y=[cur.get(c, 0.0) for c in top], name="latest window",
                           marker_color=CURRENT)
        figure.update_layout(title=html.escape(title), height=300, margin={"t": 40, "b": 30},
                             yaxis_title="share of rows")
        figures.append(figure)
    return figures


def _tests_table(signal: Signal) -> str:
    e = html.escape
    rows = "".join(
        f"<tr><td>{e(t['feature'])}</td><td>{e(t['test'])}</td><td class='num'>"
        f"{_num(t['statistic'])}</td><td class='num'>{_num(t['p_value'])}</td>"
        f"<td class='num'>{_num(t['effect_size'])}</td><td>{'DRIFT' if t['drift'] else ''}"
        "</td></tr>"
        for t in sorted(signal.payload["tests"], key=lambda t: (not t["drift"], t["feature"]))
    )
    return (
        "<table><tr><th>column</th><th>test</th><th>statistic</th><th>p-value</th>"
        f"<th>effect size</th><th>decision</th></tr>{rows}</table>"
    )


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}"


def _time(ts: float) -> pd.Timestamp:
    return pd.Timestamp(round(ts * 1000), unit="ms")
