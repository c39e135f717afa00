"""The watch loop: the monitor's windows and the rollout controller, every few seconds.

``mlcanary watch`` runs both parts in the foreground. ``mlcanary serve`` runs them as two
child processes, because they want different treatment under load:

- the monitor (and the policies, and the retrains they start) at the lowest CPU priority
  (nice 19): the operating system gives serving the core and monitoring catches up when
  traffic eases; the signals are late, never lost (windows are read from the store);
- the rollout controller at the server's own priority: it is cheap (a few reads every
  interval), and a broken challenger must be rolled back on time on a saturated machine,
  not when the load eases.

Several watchers on one store are safe: a window is recorded once, a rollout step taken
once, a policy acted on once per cooldown.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Literal

from mlcanary.config import Settings
from mlcanary.control.controller import Check, Controller
from mlcanary.control.policies import AlertSink, PolicyRunner, load_policy_file
from mlcanary.control.retrain import RetrainWorker
from mlcanary.monitor.watch import Monitor, monitor_from_settings
from mlcanary.registry.versions import ModelRegistry
from mlcanary.store.database import Store
from mlcanary.store.deployments import DeploymentLog
from mlcanary.store.signals import Signal, SignalLog

log = logging.getLogger(__name__)

Report = Callable[[list[Signal], list[Check]], None]
Part = Literal["all", "monitor", "rollouts"]
PARTS: tuple[Part, ...] = ("all", "monitor", "rollouts")


def watch(
    settings: Settings,
    names: list[str],
    stop: threading.Event,
    *,
    once: bool = False,
    report: Report | None = None,
    part: Part = "all",
) -> None:
    """Tick until ``stop`` is set (or once): the monitor and policies, the controller, or both."""
    with Store.from_settings(settings) as store:
        monitor: Monitor | None = None
        policies: PolicyRunner | None = None
        controller: Controller | None = None
        if part in ("all", "monitor"):
            monitor = monitor_from_settings(settings, store, names)
            policies = _policies(settings, store, names)
        if part in ("all", "rollouts"):
            registry = monitor.registry if monitor is not None else ModelRegistry(settings)
            controller = Controller(
                store, registry, settle_seconds=2 * settings.log_flush_seconds + 1.0
            )
        while True:
            signals = monitor.tick() if monitor is not None else []
            checks: list[Check] = []
            if controller is not None:
                try:
                    checks = controller.tick()
                except Exception:  # the store may be down: try again next tick
                    log.exception("rollout controller: tick failed")
            if policies is not None:
                try:
                    policies.tick()
                except Exception:
                    log.exception("policies: tick failed")
            if report is not None:
                report(signals, checks)
            if once or stop.wait(settings.monitor_seconds):
                return


def _policies(settings: Settings, store: Store, names: list[str]) -> PolicyRunner | None:
    if settings.policy_file is None:
        return None
    rules, plans = load_policy_file(settings.policy_file)
    rules = [p for p in rules if p.model in names]
    sink = AlertSink(settings.alert_url, settings.alert_secret)
    events = DeploymentLog(store)
    retrainer = RetrainWorker(settings, plans, events)
    return PolicyRunner(rules, SignalLog(store), events, sink, retrainer)
