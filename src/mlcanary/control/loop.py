"""The watch loop: the monitor's windows and the rollout controller, every few seconds.

``mlcanary watch`` runs it in the foreground; ``mlcanary serve`` runs it as a child process
at the lowest CPU priority (nice 19), so that under load the operating system gives serving the
core and monitoring catches up when traffic eases: the signals are late, never lost
(windows are read from the store, not from memory). Several watchers on one store are
safe: a window is recorded once, a rollout step taken once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from mlcanary.config import Settings
from mlcanary.control.controller import Check, Controller
from mlcanary.control.deployments import DeploymentLog
from mlcanary.control.policies import AlertSink, PolicyRunner, load_policy_file
from mlcanary.control.retrain import RetrainWorker
from mlcanary.monitor.signals import Signal, SignalLog
from mlcanary.monitor.store import Store
from mlcanary.monitor.watch import monitor_from_settings

log = logging.getLogger(__name__)

Report = Callable[[list[Signal], list[Check]], None]


def watch(
    settings: Settings,
    names: list[str],
    stop: threading.Event,
    *,
    once: bool = False,
    report: Report | None = None,
) -> None:
    """Tick until ``stop`` is set (or once)."""
    with Store.from_settings(settings) as store:
        monitor = monitor_from_settings(settings, store, names)
        controller = Controller(
            store, monitor.registry, settle_seconds=2 * settings.log_flush_seconds + 1.0
        )
        policies = None
        if settings.policy_file is not None:
            rules, plans = load_policy_file(settings.policy_file)
            rules = [p for p in rules if p.model in names]
            sink = AlertSink(settings.alert_url, settings.alert_secret)
            events = DeploymentLog(store)
            retrainer = RetrainWorker(settings, plans, events)
            policies = PolicyRunner(rules, SignalLog(store), events, sink, retrainer)
        while True:
            signals = monitor.tick()
            try:
                checks = controller.tick()
            except Exception:  # the store may be down: try again next tick
                log.exception("rollout controller: tick failed")
                checks = []
            if policies is not None:
                try:
                    policies.tick()
                except Exception:
                    log.exception("policies: tick failed")
            if report is not None:
                report(signals, checks)
            if once or stop.wait(settings.monitor_seconds):
                return
