"""The ``mlcanary`` command line. Heavy imports happen inside commands, so errors are fast."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from mlcanary.errors import InvalidInput, MlcanaryError
from mlcanary.tables import feedback_table, metrics_table, versions_table

app = typer.Typer(
    name="mlcanary",
    help="Train, version, serve and watch tabular models.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

EXIT_USAGE = 2


@app.command()
def train(
    data: Path = typer.Argument(..., help="CSV, TSV or Parquet file with one row per example."),
    target: str = typer.Option(..., "--target", help="Column to predict."),
    name: str | None = typer.Option(None, help="Registry name (default: the file's stem)."),
    task: str | None = typer.Option(None, help="classification or regression (default: inferred)."),
    time_column: str | None = typer.Option(
        None, help="Order rows by this time; forward-chaining folds."
    ),
    group_column: str | None = typer.Option(
        None, help="Keep each group in one fold (group k-fold)."
    ),
    model: str = typer.Option("lightgbm", help="lightgbm, logistic or random-forest."),
    folds: int = typer.Option(5, help="Cross-validation folds."),
    trials: int = typer.Option(0, help="Optuna trials per fold (nested search); 0 = defaults."),
    min_precision: float | None = typer.Option(
        None, help="Threshold: best recall at this precision."
    ),
    min_recall: float | None = typer.Option(None, help="Threshold: best precision at this recall."),
    promote: bool = typer.Option(False, "--promote", help="Make the new version the champion."),
    reference_last: int | None = typer.Option(
        None, "--reference-last",
        help="Drift reference from the last N rows only (default: every row).",
    ),
    id_column: list[str] = typer.Option(
        [], "--id-column",
        help="An identifier column (repeatable): left out of the model, still accepted.",
    ),
) -> None:
    """Cross-validate a model on DATA, register it in the MLflow registry, write its report."""
    from mlcanary.config import Settings
    from mlcanary.progress import Steps
    from mlcanary.train.spec import TrainSpec

    settings = Settings()
    spec = TrainSpec.parse(
        data=data,
        target=target,
        name=name,
        task=task,
        time_column=time_column,
        group_column=group_column,
        model=model,
        folds=folds,
        trials=trials,
        min_precision=min_precision,
        min_recall=min_recall,
        promote=promote,
        id_columns=tuple(id_column),
        seed=settings.seed,
        reference_last=reference_last,
    )
    from mlcanary.train.publish import train_and_register

    result, version, report = train_and_register(spec, settings, Steps(err))
    out.print(metrics_table(result))
    out.print(f"[bold]{result.diagnosis.verdict}[/]: {result.diagnosis.reason}")
    if result.threshold is not None:
        t = result.threshold
        out.print(
            f"threshold {t.value:.4f} ({t.rule}): "
            f"precision {t.precision:.3f}, recall {t.recall:.3f}"
        )
    aliases = ", ".join(version.aliases) or "no alias"
    out.print(f"registered [bold]{version.name}[/] version {version.version} ({aliases})")
    out.print(f"report: {report}")


@app.command()
def models(
    name: str | None = typer.Argument(None, help="Show one model's versions (default: all)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON document on stdout."),
) -> None:
    """List registered models and their versions with aliases, metrics and dates."""
    from mlcanary.config import Settings
    from mlcanary.registry.versions import ModelRegistry

    settings = Settings()
    listing = {}
    empty = settings.tracking_uri is None and not (settings.home / "mlflow.db").exists()
    if empty and name is not None:
        raise MlcanaryError(f"model '{name}': not in the registry; registered: none")
    if not empty:
        registry = ModelRegistry(settings)
        listing = {n: registry.versions(n) for n in ([name] if name else registry.names())}
    if as_json:
        docs = [{"name": n, "versions": [v.as_dict() for v in vs]} for n, vs in listing.items()]
        out.print_json(json.dumps(docs[0] if name else {"models": docs}))
        return
    if not listing:
        out.print(f"no models registered yet in {settings.registry_uri}")
        return
    for n, versions in listing.items():
        out.print(versions_table(n, versions))


@app.command()
def serve(
    names: list[str] = typer.Argument(..., help="Models to serve (each name's champion)."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8080, help="Port to listen on."),
    workers: int = typer.Option(1, min=1, help="Worker processes."),
    no_log: bool = typer.Option(
        False, "--no-log", help="Do not log predictions (same as MLCANARY_LOG_SAMPLE_RATE=0)."
    ),
) -> None:
    """Serve models over Open Inference Protocol v2 (REST) and /v1/models/NAME:predict.

    Every answered request goes to the prediction log (MLCANARY_STORE_URL, or store.db
    under MLCANARY_HOME); labels join it through POST /v2/models/NAME/feedback.
    """
    import asyncio

    import uvicorn

    from mlcanary.config import Settings
    from mlcanary.logs import configure_json_logging
    from mlcanary.serve.app import (
        WORKER_SETTINGS,
        build,
        mirrored,
        stopped_on_failure,
        worker_settings,
    )

    settings = Settings()
    if no_log:
        settings = settings.model_copy(update={"log_sample_rate": 0.0})
    _check_policies(settings)
    configure_json_logging()
    options: dict[str, Any] = {"host": host, "port": port, "log_level": "warning"}
    where = f"at http://{host}:{port}/v2 (Ctrl-C stops)"
    if workers == 1:
        served = build(settings, names)
        models = served.state.service.repository.models.values()
        err.print(f"serving {', '.join(f'{m.name} v{m.version}' for m in models)} {where}")
        uvicorn.run(served, access_log=False, **options)
        return
    # One monitor and one controller for all the workers, children of this supervisor (in
    # each worker they would repeat every window's analysis N times); they mirror the
    # registry for the workers.
    registry, children = mirrored(settings, names)
    with stopped_on_failure(children):
        champions = {name: registry.version(name, "champion").version for name in names}
    mirror = children.mirror if children is not None else None
    settings = settings.model_copy(update={"monitor": False})
    err.print(f"serving {', '.join(f'{n} v{v}' for n, v in champions.items())} {where}")
    # uvicorn spawns the workers: the environment is their only way in (one variable that
    # carries these settings whole; the user's own settings are left as they are).
    os.environ[WORKER_SETTINGS] = worker_settings(settings, names, mirror)
    try:
        uvicorn.run(
            "mlcanary.serve.app:from_environment",
            factory=True,
            workers=workers,
            access_log=False,
            **options,
        )
    finally:
        if children is not None:
            asyncio.run(children.stop())


@app.command()
def predict(
    name: str = typer.Argument(..., help="Registered model name."),
    data: Path = typer.Argument(..., help="CSV, TSV or Parquet file with the training columns."),
    out_path: Path | None = typer.Option(
        None, "--out", help="Output file (default: DATA's stem + .predictions)."
    ),
    version: str = typer.Option("champion", help="Version number or alias."),
) -> None:
    """Score a file in batch through the server's validation and runtime."""
    from mlcanary.config import Settings
    from mlcanary.progress import Steps
    from mlcanary.registry.versions import ModelRegistry
    from mlcanary.serve.batch import score_frame, write_table
    from mlcanary.serve.repository import ModelRepository
    from mlcanary.serve.validation import check_columns
    from mlcanary.train.data import read_table

    settings = Settings()
    frame = read_table(data)
    repository = ModelRepository(ModelRegistry(settings), [name], alias=version)
    repository.load()
    model = repository.get(name)
    check_columns(frame, model.signature)
    target = out_path or data.with_name(f"{data.stem}.predictions{data.suffix}")
    steps = Steps(err)
    with (
        steps.running(),
        steps.stage(f"scoring with {name} v{model.version}", len(frame)) as advance,
    ):
        scored = score_frame(frame, model, settings.unseen_categories, advance)
    write_table(scored, target)
    out.print(f"scored {len(frame):,} rows with {name} version {model.version} -> {target}")


@app.command()
def reference(
    name: str = typer.Argument(..., help="Registered model name."),
    data: Path = typer.Argument(
        ..., help="CSV, TSV or Parquet file with the model's input columns (held-out rows)."),
    version: str = typer.Option("champion", help="Version number or alias."),
    target: str | None = typer.Option(
        None, "--target", help="Label column: adds baseline metrics and importances."),
    rows: int = typer.Option(5000, "--rows", min=100, help="Rows kept in the sample."),
) -> None:
    """Attach a reference profile to a version mlcanary did not train, so that its drift
    (and, with --target, its quality) is monitored."""
    from mlcanary.config import Settings
    from mlcanary.models.attach import attach_reference
    from mlcanary.progress import Steps
    from mlcanary.registry.versions import ModelRegistry
    from mlcanary.train.data import read_table

    settings = Settings()
    frame = read_table(data)
    steps = Steps(err)
    with steps.running(), steps.stage(f"profiling {len(frame):,} rows of {data.name}", 1) as done:
        kept = attach_reference(ModelRegistry(settings), name, version, frame, target=target,
                                rows=rows, seed=settings.seed, advance=done)
    metrics = ", ".join(f"{k} {m:.3f} (± {s:.3f})" for k, (m, s) in kept.metrics.items())
    out.print(f"attached a reference of {kept.sample_rows:,} of {kept.rows:,} rows to {name} "
              f"version {kept.info.version}" + (f"; on these rows: {metrics}" if metrics else
                                                "; no --target: drift only"))


@app.command()
def feedback(
    name: str = typer.Argument(..., help="Model the predictions were made by."),
    data: Path = typer.Argument(
        ..., help="CSV, TSV or Parquet file with columns id, label and optionally row."
    ),
) -> None:
    """Join true labels to logged predictions by request id.

    DATA has one record per labelled row: 'id' (the request id the server answered
    with: V2 body 'id', V1 'id' or header X-Request-Id) and 'label'. For a request
    that predicted several rows, add a 'row' column numbering them 0, 1, ... in the
    request's order, one record per row. Labels must be classes of the model (or
    numbers, for regression). Sending a label again changes nothing; a different one
    replaces it. Nothing is written if any record is wrong.
    """
    from mlcanary.config import Settings
    from mlcanary.store.database import Store
    from mlcanary.store.feedback import items_from_frame
    from mlcanary.train.data import read_table

    frame = read_table(data, text_columns=("id",))
    items = items_from_frame(frame, f"feedback file '{data}'")
    with Store.from_settings(Settings()) as store:
        result = store.add_feedback(name, items)
        if not result.matched and not store.count(name):  # a typo in NAME, most likely
            raise MlcanaryError(
                f"model '{name}': no predictions logged in {store.where}; expected the name "
                "of a served model whose requests were logged"
            )
    out.print(feedback_table(name, result))
    if result.unknown:
        shown = ", ".join(result.unknown[:10]) + (" ..." if len(result.unknown) > 10 else "")
        out.print(f"unknown ids (no prediction of {name} logged): {shown}")


@app.command()
def watch(
    names: list[str] = typer.Argument(..., help="Models whose prediction log to watch."),
    once: bool = typer.Option(False, "--once", help="Analyse what is there now, then exit."),
    quiet: bool = typer.Option(False, "--quiet", help="Log signals instead of printing them."),
    part: str = typer.Option(
        "all", "--part",
        help="all, monitor (windows, signals, policies, retrains) or rollouts (the controller).",
    ),
    monitor_nice: int = typer.Option(
        0, "--monitor-nice",
        help="Lower the monitor's CPU priority by this much (0-19; Linux: its own thread).",
    ),
    mirror: Path | None = typer.Option(
        None, "--mirror", hidden=True,
        help="Keep a copy of the registry in this folder for a server (registry/mirror.py).",
    ),
) -> None:
    """Run the monitor and the rollout controller: windows of the prediction log -> drift
    and performance signals; running rollouts -> gates -> step, promote or roll back.

    mlcanary serve runs this in one child process, the monitor in a thread at nice 19 and the
    controller at the server's priority; run it yourself for replicas started with
    MLCANARY_MONITOR=false that share one store.
    """
    import threading

    from mlcanary.config import Settings
    from mlcanary.registry.versions import ModelRegistry

    settings = Settings()
    registry = ModelRegistry(settings)
    writer = None
    if mirror is not None:
        from mlcanary.registry.mirror import MirrorWriter

        # First, before the monitor's imports: the server waits for this file to load.
        writer = MirrorWriter(registry, list(names), mirror)
        writer.sync()

    from mlcanary.control.loop import MAX_NICE, PARTS
    from mlcanary.control.loop import watch as watch_loop

    if part not in PARTS:
        raise InvalidInput(f"--part: expected one of {', '.join(PARTS)}; got {part!r}")
    if not 0 <= monitor_nice <= MAX_NICE:
        raise InvalidInput(f"--monitor-nice: expected 0 to {MAX_NICE}; got {monitor_nice}")
    if writer is None:  # a server's child leaves an unknown model to the server to report
        for name in names:
            registry.version(name, "champion")  # an unknown model is an error now, not later
    _check_policies(settings)

    def show(signals: list[Any], checks: list[Any]) -> None:
        for s in signals:
            flag = "[bold red]FLAGGED[/]" if s.flagged else "[green]ok[/]"
            out.print(f"{s.model} v{s.version} ({s.variant}) {s.kind}, {s.rows:,} rows: {flag}")
        for c in checks:
            failed = "; ".join(g.reason for g in c.gates if g.passed is False)
            out.print(f"{c.model} rollout: {c.action}" + (f" ({failed})" if failed else ""))

    if quiet:
        from mlcanary.logs import configure_json_logging

        configure_json_logging()
    stop = threading.Event()
    if not once and not quiet:
        err.print(f"watching {', '.join(names)} every {settings.monitor_seconds:g} s; Ctrl-C stops")
    try:
        watch_loop(settings, list(names), stop, once=once, report=None if quiet else show,
                   part=part, monitor_nice=monitor_nice, mirror=writer)
    except KeyboardInterrupt:
        err.print("stopped")


@app.command()
def status(
    name: str = typer.Argument(..., help="Model to report on."),
    as_json: bool = typer.Option(False, "--json", help="One JSON document instead of tables."),
    last: int = typer.Option(10, "--last", min=1, help="Windows to show."),
) -> None:
    """Drift per window, the tests that fired, and performance against the CV baseline."""
    from mlcanary.config import Settings
    from mlcanary.control.status import status_document, status_renderable
    from mlcanary.registry.versions import ModelRegistry
    from mlcanary.store.database import Store

    settings = Settings()
    ModelRegistry(settings).version(name, "champion")
    from mlcanary.control.policies import policy_rules

    rules = policy_rules(settings)
    with Store.from_settings(settings) as store:
        document = status_document(store, name, last=last, policies=rules)
    if as_json:
        out.print_json(json.dumps(document, allow_nan=False))
    else:
        out.print(status_renderable(document))


@app.command()
def report(
    name: str = typer.Argument(..., help="Model to report on."),
    last: int = typer.Option(50, "--last", min=1, help="Windows to include."),
    out_path: Path | None = typer.Option(None, "--out", help="HTML file to write."),
) -> None:
    """Write a self-contained HTML drift report (Plotly): signals over time, reference vs
    current distribution per column, the tests and effect sizes of the latest window."""
    from mlcanary.config import Settings
    from mlcanary.monitor.report import render_drift_report
    from mlcanary.registry.versions import ModelRegistry
    from mlcanary.store.database import Store

    settings = Settings()
    registry = ModelRegistry(settings)
    registry.version(name, "champion")
    with Store.from_settings(settings) as store:
        extra = _shadow_view(store, name)
        page = render_drift_report(store, registry, name, last=last, extra=extra)
    target = out_path or settings.home / "reports" / f"{name}-drift.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(page, encoding="utf-8")
    out.print(f"drift report: {target}")


def _replayable(name: str) -> bool:
    """A strategy ``mlcanary backtest --rollout`` replays: one the controller checks."""
    from mlcanary.control.strategies import STRATEGIES

    return name in STRATEGIES and STRATEGIES[name].checked


def _shadow_view(store: Any, name: str) -> list[tuple[str, Any]]:
    """A running or finished shadow rollout's comparison, for the report."""
    from mlcanary.control.shadow import difference_figure, shadow_pairs, shadow_summary
    from mlcanary.control.status import shadow_line
    from mlcanary.control.strategies import strategy_named
    from mlcanary.store.deployments import DeploymentLog

    deployment = DeploymentLog(store).get(name)
    if deployment is None or strategy_named(deployment.strategy).answers_clients:
        return []
    pairs = shadow_pairs(store, name, since=deployment.started)
    summary = shadow_summary(pairs)
    if summary is None:
        return []
    return [(shadow_line(summary) + ".", difference_figure(pairs, summary))]


def _check_policies(settings: Any) -> None:
    """A bad policy file stops the command now, with one line, not the monitor later; so
    does a store this version cannot use (one a newer mlcanary migrated). A store that is
    down is no reason not to start: the server retries it."""
    from mlcanary.control.policies import policy_rules
    from mlcanary.errors import Unavailable
    from mlcanary.store.database import Store

    policy_rules(settings)
    store = Store.from_settings(settings)
    try:
        store.open()
    except Unavailable:
        pass
    finally:
        store.close()


def _rollouts() -> tuple[Any, Any, Any]:
    from mlcanary.config import Settings
    from mlcanary.registry.versions import ModelRegistry
    from mlcanary.store.database import Store
    from mlcanary.store.deployments import DeploymentLog

    settings = Settings()
    store = Store.from_settings(settings).open()
    return ModelRegistry(settings), DeploymentLog(store), store


def _numbers(text: str | None, option: str) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(part) for part in text.split(",")]
    except ValueError:
        raise InvalidInput(
            f"{option}: expected comma-separated numbers like 1,5,10, got {text!r}"
        ) from None


def _seconds(text: str) -> float:
    units = {"s": 1.0, "m": 60.0, "h": 3600.0}
    number, unit = (text[:-1], units[text[-1]]) if text and text[-1] in units else (text, 1.0)
    try:
        return float(number) * unit
    except ValueError:
        raise InvalidInput(
            f"--interval: expected a duration like 60s or 5m, got {text!r}"
        ) from None


@app.command()
def deploy(
    name: str = typer.Argument(
        ..., help="Model whose champion the challenger is rolled out against."
    ),
    challenger: int = typer.Option(..., "--challenger", help="Version to roll out."),
    strategy: str = typer.Option("canary", "--strategy", help="canary, ab or shadow."),
    steps: str | None = typer.Option(
        None, "--steps", help="Canary weights, e.g. 1,5,10,25,50,100."
    ),
    interval: str = typer.Option("60s", "--interval", help="Time between gate checks."),
    max_failures: int = typer.Option(
        2, "--max-failures", help="Failed checks (in all) before rollback."
    ),
    weights: str | None = typer.Option(None, "--weights", help="A/B split, e.g. 50,50."),
    mirror_percent: float = typer.Option(100.0, "--mirror-percent", help="Shadow: share copied."),
    key_column: str | None = typer.Option(None, "--key-column", help="Sticky-assignment column."),
) -> None:
    """Start a rollout: servers route traffic to the challenger as the strategy says."""
    from mlcanary.control import actions

    registry, log, store = _rollouts()
    with store:
        d = actions.deploy(
            registry,
            log,
            name,
            challenger=challenger,
            strategy=strategy,
            steps=_numbers(steps, "--steps"),
            interval_seconds=_seconds(interval),
            max_failures=max_failures,
            weights=_numbers(weights, "--weights"),
            mirror_percent=mirror_percent,
            key_column=key_column,
        )
    out.print(
        f"{name}: {d.strategy} rollout of version {d.challenger} against "
        f"{d.champion}; traffic {d.weights}"
    )


def _act(name: str, action: str) -> None:
    from mlcanary.control import actions

    registry, log, store = _rollouts()
    with store:
        if action == "promote":
            d = actions.promote(registry, log, name)
        elif action == "rollback":
            d = actions.rollback(registry, log, name)
        elif action == "pause":
            d = actions.pause(log, name)
        else:
            d = actions.resume(log, name)
    out.print(
        f"{name}: {d.status}; champion {d.champion}, challenger {d.challenger}; traffic {d.weights}"
    )


@app.command()
def promote(
    name: str = typer.Argument(..., help="Model whose challenger becomes champion."),
) -> None:
    """Promote the challenger now: aliases and traffic move together."""
    _act(name, "promote")


@app.command()
def rollback(name: str = typer.Argument(..., help="Model whose rollout to undo.")) -> None:
    """Roll back now: all traffic to the champion, the challenger alias removed."""
    _act(name, "rollback")


@app.command()
def pause(name: str = typer.Argument(..., help="Model whose rollout to hold.")) -> None:
    """Hold the current traffic split; no gate runs until resumed."""
    _act(name, "pause")


@app.command()
def resume(name: str = typer.Argument(..., help="Model whose rollout to resume.")) -> None:
    """Resume a paused rollout."""
    _act(name, "resume")


@app.command()
def events(
    name: str = typer.Argument(..., help="Model whose audit trail to show."),
    as_json: bool = typer.Option(False, "--json", help="JSON lines instead of a table."),
    last: int = typer.Option(50, "--last", min=1),
    at: str | None = typer.Option(
        None, "--at", help="Say which versions served at this time (ISO 8601, UTC unless "
        "it has a zone; or epoch seconds) instead of listing events."
    ),
) -> None:
    """Every action on the model's rollouts: time, actor, cause and state before/after."""
    from rich.table import Table

    registry, log, store = _rollouts()
    if at is not None:
        with store:
            _serving_at(registry, log, name, _when(at), as_json)
        return
    with store:
        found = log.events(name, last=last)
    if as_json:
        out.print_json(json.dumps([e.as_dict() for e in found]))
        return
    table = Table(title=f"{name}: events")
    for column in ("time (UTC)", "event", "actor", "traffic after", "why"):
        table.add_column(column)
    from datetime import UTC, datetime

    for e in found:
        failed = [g["reason"] for g in e.cause.get("gates", []) if g.get("passed") is False]
        why = "; ".join(failed) or e.cause.get("reason", "") or "gates passed"
        after = (e.after or {}).get("weights", "")
        table.add_row(
            datetime.fromtimestamp(e.ts, UTC).strftime("%Y-%m-%d %H:%M:%S"),
            e.kind,
            e.actor,
            str(after),
            why,
        )
    out.print(table)


def _when(text: str) -> float:
    from datetime import UTC, datetime

    try:
        return float(text)
    except ValueError:
        pass
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            f"--at: expected a time like 2026-11-28T18:30:00 (UTC unless it has a zone) or "
            f"epoch seconds, got {text!r}"
        ) from None
    return (stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)).timestamp()


def _serving_at(registry: Any, log: Any, name: str, ts: float, as_json: bool) -> None:
    from datetime import UTC, datetime

    from mlcanary.control.history import serving_at

    known = registry.versions(name)  # NotFound for an unknown model
    champion = registry.alias_version(name, "champion") if known else None
    serving = serving_at(log.events(name, last=100_000), ts, champion)
    when = datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")
    if as_json:
        out.print_json(json.dumps(None if serving is None else serving.as_dict()))
        return
    if serving is None:
        out.print(f"{name} at {when}: no champion on record")
        return
    split = ", ".join(f"version {v} {share:g}%" for v, share in serving.versions.items())
    source = ("before any rollout on record" if serving.event is None else
              f"since event {serving.event.id} ({serving.event.kind} by {serving.event.actor} "
              f"at {datetime.fromtimestamp(serving.event.ts, UTC).isoformat(timespec='seconds')})")
    shadow = f"; version {serving.shadow} answered shadow copies" if serving.shadow else ""
    out.print(f"{name} at {when}: {split}{shadow} ({source})")


@app.command()
def retrain(
    name: str = typer.Argument(..., help="Model to retrain, as its [retrain.NAME] table says."),
) -> None:
    """Retrain now: source data + labelled log -> challenger -> the configured rollout."""
    from mlcanary.config import Settings
    from mlcanary.control.policies import load_policy_file
    from mlcanary.control.retrain import Trigger, run_and_record
    from mlcanary.progress import Steps
    from mlcanary.store.deployments import Event

    settings = Settings()
    if settings.policy_file is None:
        raise InvalidInput(
            "retrain: no policy file; set MLCANARY_POLICY_FILE to a file with a "
            f"[retrain.{name}] table"
        )
    plan = load_policy_file(settings.policy_file)[1].get(name)
    if plan is None:
        raise InvalidInput(
            f"retrain: policy file '{settings.policy_file}' has no [retrain.{name}] table"
        )
    _, log, store = _rollouts()
    with store:
        trigger = Trigger("user", {"reason": "mlcanary retrain"})
        log.record(Event(name, "retrain", "user", trigger.cause, None, {"status": "started"}))
        outcome = run_and_record(plan, settings, trigger, log, Steps(err))
        if outcome is None:
            reason = log.events(name, last=1)[-1].cause.get("reason", "")
            raise InvalidInput(f"retrain '{name}' failed: {reason}")
    lineage = outcome.lineage
    rollout = outcome.rollout or {"strategy": "none (it is the first version: champion)"}
    out.print(
        f"{name}: version {outcome.version} trained on {lineage['rows']:,} rows "
        f"({lineage['source_rows']:,} from {lineage['source']}, {lineage['log_rows']:,} "
        f"labelled from the log); rollout {rollout}\nreport: {outcome.report}"
    )


@app.command()
def backtest(
    name: str = typer.Argument(..., help="Registered model name."),
    data: Path = typer.Argument(..., help="Labelled CSV, TSV or Parquet file, replayed in order."),
    version: str = typer.Option("champion", help="Version number or alias under test."),
    target: str | None = typer.Option(None, help="Label column (default: the model's target)."),
    time_column: str | None = typer.Option(None, help="Replay in this column's order."),
    window_rows: int = typer.Option(1000, min=50, help="Rows per drift window."),
    reference_rows: int | None = typer.Option(
        None, min=50, help="Drift reference: the first N rows (not replayed), as scored."
    ),
    rollout: str | None = typer.Option(None, help="Also replay a rollout: canary or ab."),
    steps: str | None = typer.Option(None, help="Canary weights, e.g. 1,5,10,25,50,100."),
    weights: str | None = typer.Option(None, help="A/B split, e.g. 50,50."),
    interval_rows: int = typer.Option(1000, min=20, help="Requests per rollout interval."),
    max_failures: int = typer.Option(2, min=1, help="Failed checks (in all) before rollback."),
    challenger: str = typer.Option(
        "same", help="'same' (the tested version on both arms: A/A) or a version."
    ),
    repeats: int = typer.Option(10, min=1, max=1000, help="Replays, from spread offsets."),
    shuffle: bool = typer.Option(False, help="Replay rows in random order (an honest null)."),
    pooled: bool = typer.Option(
        False, help="Quality pooled over the whole ramp, the rule before strata (to compare)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
) -> None:
    """Replay a labelled table as traffic through the monitor and rollout controller."""
    from mlcanary.backtest import BacktestRequest, print_result, run_backtest
    from mlcanary.config import Settings
    from mlcanary.control.actions import validate_steps
    from mlcanary.control.backtest import BacktestPlan
    from mlcanary.control.strategies import STRATEGIES
    from mlcanary.progress import Steps

    if rollout is not None and not _replayable(rollout):
        checked = " or ".join(name for name in STRATEGIES if _replayable(name))
        raise InvalidInput(f"--rollout: expected {checked}, got {rollout!r}")
    if rollout is None and (steps or weights or challenger != "same" or pooled):
        raise InvalidInput("--steps, --weights, --challenger and --pooled need --rollout")
    if challenger != "same" and not challenger.isdigit():
        raise InvalidInput(f"--challenger: expected 'same' or a version number, got {challenger!r}")
    split = _numbers(weights, "--weights") or [50.0, 50.0]
    if len(split) != 2 or abs(sum(split) - 100) > 1e-6 or min(split) <= 0:
        raise InvalidInput(f"--weights: expected two positive percentages summing to 100, "
                           f"got {split}")
    plan = BacktestPlan(
        window_rows=window_rows, rollout=rollout,  # type: ignore[arg-type]
        steps=validate_steps(_numbers(steps, "--steps")), weights=(split[0], split[1]),
        interval_rows=interval_rows, max_failures=max_failures, repeats=repeats,
        shuffle=shuffle, stratify=not pooled,
    )
    request = BacktestRequest(name, data, version, target, time_column, reference_rows,
                              challenger)
    result = run_backtest(request, plan, Settings(), Steps(None if as_json else err))
    if as_json:
        sys.stdout.write(json.dumps(result.as_dict()) + "\n")
    else:
        print_result(result, plan, out)


@app.command()
def demo() -> None:
    """Tell the end-to-end story on generated data."""
    from mlcanary.config import Settings
    from mlcanary.demo import run_demo

    run_demo(Settings(), out, err)


def main() -> None:
    """Entry point: user errors are one line on stderr and exit code 2, never a traceback."""
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # MLflow configures its own logger when imported; these keep its chatter out of
    # the CLI's output and stop it from phoning home.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    try:
        if len(sys.argv) > 1 and not {"--help", "-h"} & set(sys.argv[1:]):
            # Settings first, before any command imports its heavy modules: a bad setting
            # is one line and exit 2 at once, the same for every command.
            from mlcanary.config import Settings

            Settings()
        app(standalone_mode=False)
    except MlcanaryError as exc:
        err.print(f"error: {exc}", soft_wrap=True, markup=False)
        sys.exit(EXIT_USAGE)
    except KeyboardInterrupt:
        err.print("aborted")
        sys.exit(130)
    except Exception as exc:
        # Typer ships its own copy of click, so its usage errors are recognised by shape.
        kind = type(exc).__name__
        if kind == "NoArgsIsHelpError":
            exc.show()  # type: ignore[attr-defined]
            sys.exit(EXIT_USAGE)
        if kind == "Abort":
            err.print("aborted")
            sys.exit(130)
        if hasattr(exc, "format_message") and hasattr(exc, "exit_code"):
            err.print(f"error: {exc.format_message()}", soft_wrap=True, markup=False)
            sys.exit(int(exc.exit_code))
        if os.environ.get("MLCANARY_DEBUG"):
            raise
        err.print(
            f"error: internal error ({kind}: {exc}); set MLCANARY_DEBUG=1 for the traceback",
            soft_wrap=True,
            markup=False,
        )
        sys.exit(1)
