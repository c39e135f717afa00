"""What the monitor says about a model: one JSON document and its table form.

``mlcanary status NAME --json`` and ``GET /monitor/{name}`` return the same document:
the log's size, then per window the dataset-level decision and every test
(``{"feature", "test", "statistic", "p_value", "effect_size", "drift"}``), the latest
performance signal, the rollout, and the policy file's rules for the model (windows
counted, whether the rule fires now, when it last acted, until when it cools down).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from mlcanary.control.policies import Policy, policy_states
from mlcanary.control.shadow import shadow_pairs, shadow_summary
from mlcanary.control.strategies import strategy_named
from mlcanary.store.database import Store
from mlcanary.store.deployments import DeploymentLog
from mlcanary.store.signals import Signal, SignalLog
from mlcanary.store.traffic import TrafficLog


def status_document(
    store: Store, name: str, *, last: int = 10, policies: list[Policy] | None = None
) -> dict[str, Any]:
    """The monitor's view of ``name``: log size, the ``last`` drift windows, performance,
    the rollout, and where each of ``policies`` (the policy file's rules) stands."""
    log = SignalLog(store)
    drift = log.latest(name, kind="drift", last=last)
    performance = log.latest(name, kind="performance", last=1)
    written, dropped = TrafficLog(store).log_totals(name)
    return {
        "model": name,
        "store": store.where,
        "predictions_logged": store.count(name),
        "predictions_dropped": dropped,
        "predictions_written_by_servers": written,
        "windows": [_window(s) for s in drift],
        "performance": _performance(performance[0]) if performance else None,
        "rollout": _rollout(store, name),
        "policies": [
            {**state, "last_acted": _iso_or_none(state["last_acted"]),
             "cooling_down_until": _iso_or_none(state["cooling_down_until"])}
            for state in policy_states(policies or [], name, log, DeploymentLog(store))
        ],
    }


def _rollout(store: Store, name: str) -> dict[str, Any] | None:
    """The model's latest rollout: variants, traffic, the last check's gates, last events."""
    log = DeploymentLog(store)
    deployment = log.get(name)
    if deployment is None:
        return None
    events = log.events(name, last=10)
    checks = [e for e in events if e.cause.get("gates")]
    return {
        "strategy": deployment.strategy,
        "status": deployment.status,
        "champion": deployment.champion,
        "challenger": deployment.challenger,
        "traffic": deployment.weights,
        **strategy_named(deployment.strategy).status(deployment),
        "failures": deployment.failures,
        "max_failures": deployment.max_failures,
        "last_gates": checks[-1].cause["gates"] if checks else [],
        "shadow": (
            shadow_summary(shadow_pairs(store, name, since=deployment.started))
            if not strategy_named(deployment.strategy).answers_clients else None
        ),
        "events": [
            {"time": _iso(e.ts), "kind": e.kind, "actor": e.actor} for e in events[-5:]
        ],
    }


def _window(signal: Signal) -> dict[str, Any]:
    payload = signal.payload
    return {
        "variant": signal.variant,
        "version": signal.version,
        "start": _iso(signal.start_ts),
        "end": _iso(signal.end_ts),
        "rows": signal.rows,
        "skipped_requests_before": payload.get("skipped_requests", 0),
        "dataset_drift": payload["dataset_drift"],
        "drift_share": payload["drift_share"],
        "drifted_columns": payload["drifted_columns"],
        "prediction_drift": payload["prediction_drift"],
        "multivariate": payload["multivariate"],
        "tests": payload["tests"],
    }


def _performance(signal: Signal) -> dict[str, Any]:
    return {
        "variant": signal.variant,
        "version": signal.version,
        "start": _iso(signal.start_ts),
        "end": _iso(signal.end_ts),
        **signal.payload["performance"],
    }


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def _iso_or_none(ts: float | None) -> str | None:
    return None if ts is None else _iso(ts)


def status_renderable(document: dict[str, Any]) -> Group:
    """Rich tables: one line per window, then the latest window's drifted tests."""
    windows = Table(title=f"{document['model']}: drift per window", title_justify="left")
    for column in ("end (UTC)", "variant", "version", "rows", "dataset drift", "share",
                   "drifted columns", "multivariate AUC"):
        windows.add_column(column, justify="right" if column in ("rows", "share") else "left")
    for w in document["windows"]:
        multi = w["multivariate"]
        windows.add_row(
            w["end"].replace("+00:00", ""),
            w["variant"],
            str(w["version"]),
            f"{w['rows']:,}",
            Text("DRIFT", style="bold red") if w["dataset_drift"] else Text("ok", style="green"),
            f"{w['drift_share']:.0%}",
            ", ".join(w["drifted_columns"]) or "-",
            "-" if multi is None else f"{multi['statistic']:.3f} (p={multi['p_value']:.2g})",
        )
    dropped = document["predictions_dropped"]
    parts: list[Any] = [
        Text(f"{document['predictions_logged']:,} predictions logged in {document['store']}"
             + (f"; {dropped:,} dropped (buffer full: database slow or down)" if dropped else ""),
             style="bold red" if dropped else "")
    ]
    parts.append(windows if document["windows"] else Text("no window analysed yet"))
    if document["windows"]:
        latest = document["windows"][-1]
        tests = Table(title="latest window: tests that fired", title_justify="left")
        for column in ("feature", "test", "statistic", "p-value", "effect size"):
            tests.add_column(column)
        for t in latest["tests"]:
            if t["drift"]:
                tests.add_row(t["feature"], t["test"], _num(t["statistic"]), _num(t["p_value"]),
                              _num(t["effect_size"]))
        if tests.row_count:
            parts.append(tests)
    rollout = document.get("rollout")
    if rollout is not None:
        parts.append(Text(
            f"rollout: {rollout['strategy']} of v{rollout['challenger']} against "
            f"v{rollout['champion']}, {rollout['status']}; traffic "
            + ", ".join(f"{k} {v:g}%" for k, v in rollout["traffic"].items())
            + f"; failed checks {rollout['failures']}/{rollout['max_failures']}"
        ))
        gates = Table(title="last check", title_justify="left")
        for column in ("gate", "result", "why"):
            gates.add_column(column)
        for g in rollout["last_gates"]:
            result = {True: "pass", False: "FAIL", None: "no data"}[g["passed"]]
            gates.add_row(g["gate"], result, g["reason"])
        if gates.row_count:
            parts.append(gates)
        shadow = rollout.get("shadow")
        if shadow is not None:
            parts.append(Text(shadow_line(shadow)))
        parts.append(Text("events: " + "; ".join(
            f"{e['time']} {e['kind']} ({e['actor']})" for e in rollout["events"])))
    rules = Table(title="policies", title_justify="left")
    for column in ("policy", "rule", "recent windows counted", "now", "last acted",
                   "cooling down until"):
        rules.add_column(column)
    for r in document.get("policies", []):
        rules.add_row(
            r["policy"], f"{r['rule']} -> {', '.join(r['actions'])}",
            f"{r['counted']} of {r['windows']}",
            Text("FIRES", style="bold red") if r["fires_now"] else Text("quiet", style="green"),
            (r["last_acted"] or "never").replace("+00:00", ""),
            (r["cooling_down_until"] or "-").replace("+00:00", ""),
        )
    if rules.row_count:
        parts.append(rules)
    performance = document["performance"]
    if performance is None:
        parts.append(Text("performance: no labelled window yet"))
    else:
        verdict = "DEGRADED" if performance["degraded"] else "ok"
        parts.append(Text(
            f"performance ({performance['n']:,} labelled rows, v{performance['version']}): "
            f"{performance['metric']} {_num(performance['value'])} "
            f"[{_num(performance['ci_low'])}, {_num(performance['ci_high'])}] vs baseline "
            f"{_num(performance['baseline'])}: {verdict}",
            style="bold red" if performance["degraded"] else "",
        ))
    return Group(*parts)


def shadow_line(shadow: dict[str, Any]) -> str:
    """One line: agreement with its interval, the score differences, paired quality."""
    d = shadow["difference"]
    text = f"shadow: {shadow['pairs']:,} paired rows"
    agreement = shadow.get("agreement")
    if agreement is not None:
        text += (f"; labels agree {agreement['rate']:.1%} "
                 f"[{agreement['ci_low']:.1%}, {agreement['ci_high']:.1%}]")
    text += (f"; {shadow['difference_of']}, challenger - champion: median {d['p50']:+.4f}, "
             f"90% within [{d['p5']:+.4f}, {d['p95']:+.4f}], mean |diff| {d['mean_abs']:.4f}")
    labelled = shadow.get("labelled")
    if labelled is not None:
        (metric,) = labelled["champion"]
        text += (f"; on {labelled['rows']:,} labelled rows {metric} champion "
                 f"{labelled['champion'][metric]:.4f}, challenger "
                 f"{labelled['challenger'][metric]:.4f}")
    return text


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"
