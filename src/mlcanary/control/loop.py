"""The watch loop: the monitor's windows and the rollout controller, every few seconds.

``mlcanary watch`` runs both parts; ``mlcanary serve`` runs it as one child process. The
two parts want different treatment under load, so with ``monitor_nice`` they tick in two
threads of that one process:

- the monitor (and the policies, and the retrains they start) in a thread at a lower CPU
  priority (``serve`` asks for nice 19): the operating system gives serving the core and
  monitoring catches up when traffic eases; the signals are late, never lost (windows are
  read from the store);
- the rollout controller in the main thread at the process's own priority: it is cheap (a
  few reads every interval), and a broken challenger must be rolled back on time on a
  saturated machine, not when the load eases.

A thread's nice value is its own on Linux (``setpriority`` on the thread id); elsewhere the
monitor thread keeps the process's priority. One process instead of two saves the second
interpreter (about 250 MB with pandas, MLflow and the models loaded). The price: the two
threads share one GIL, so a descheduled monitor thread can delay the controller by a
scheduler slice at each hand-over; the rollout tests under SIGKILLs and bursts pass with it.

Several watchers on one store are safe: a window is recorded once, a rollout step taken
once, a policy acted on once per cooldown.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable
from typing import Literal

from mlcanary.config import Settings
from mlcanary.control.controller import Check, Controller
from mlcanary.control.policies import AlertSink, PolicyRunner, load_policy_file
from mlcanary.control.retrain import RetrainWorker
from mlcanary.monitor.watch import Monitor, monitor_from_settings
from mlcanary.registry.mirror import MirrorWriter
from mlcanary.registry.versions import ModelRegistry
from mlcanary.store.database import Store
from mlcanary.store.deployments import DeploymentLog
from mlcanary.store.signals import Signal, SignalLog

log = logging.getLogger(__name__)

Report = Callable[[list[Signal], list[Check]], None]
Part = Literal["all", "monitor", "rollouts"]
PARTS: tuple[Part, ...] = ("all", "monitor", "rollouts")
MAX_NICE = 19


def watch(
    settings: Settings,
    names: list[str],
    stop: threading.Event,
    *,
    once: bool = False,
    report: Report | None = None,
    part: Part = "all",
    monitor_nice: int = 0,
    mirror: MirrorWriter | None = None,
) -> None:
    """Tick until ``stop`` is set (or once): the monitor and policies, the controller, or both.

    ``monitor_nice`` lowers the monitor's priority by that much (0 to 19); with both parts
    the monitor then ticks in a thread of its own, the controller in the calling thread.
    A ``mirror`` (a server's copy of the registry) is brought up to date after each
    controller tick, so a promotion reaches it in the same round.
    """
    if not 0 <= monitor_nice <= MAX_NICE:
        raise ValueError(f"monitor_nice: expected 0 to {MAX_NICE}; got {monitor_nice}")
    with Store.from_settings(settings) as store:
        monitor: Monitor | None = None
        policies: PolicyRunner | None = None
        controller: Controller | None = None
        if part in ("all", "monitor"):
            monitor = monitor_from_settings(settings, store, names)
            policies = _policies(settings, store, names)
        if part in ("all", "rollouts"):
            # A registry of its own: the controller may tick in another thread than the monitor.
            controller = Controller(store, ModelRegistry(settings),
                                    settle_seconds=2 * settings.log_flush_seconds + 1.0)
        say = report or _silent
        if once or monitor is None or controller is None or not monitor_nice:
            if monitor is not None and monitor_nice and controller is None:
                lower_thread_priority(monitor_nice)
            while True:
                signals = _tick_monitor(monitor, policies)
                say(signals, _tick_controller(controller))
                _sync(mirror)
                if once or stop.wait(settings.monitor_seconds):
                    return
        _two_threads(settings, stop, monitor, policies, controller, say, monitor_nice, mirror)


def _two_threads(settings: Settings, stop: threading.Event, monitor: Monitor,
                 policies: PolicyRunner | None, controller: Controller, say: Report,
                 nice: int, mirror: MirrorWriter | None) -> None:
    """The monitor in a low-priority thread, the controller here; either's crash stops both."""
    failure: list[BaseException] = []

    def monitoring() -> None:
        lower_thread_priority(nice)
        try:
            while not stop.is_set():
                say(_tick_monitor(monitor, policies), [])
                if stop.wait(settings.monitor_seconds):
                    return
        except BaseException as error:  # re-raised in the main thread
            failure.append(error)
            stop.set()

    thread = threading.Thread(target=monitoring, name="mlcanary-monitor", daemon=True)
    thread.start()
    try:
        while not stop.is_set():
            checks = _tick_controller(controller)
            if checks:
                say([], checks)
            _sync(mirror)
            if stop.wait(settings.monitor_seconds):
                break
    finally:
        stop.set()
        thread.join(timeout=60)
    if failure:
        raise failure[0]


def _tick_monitor(monitor: Monitor | None, policies: PolicyRunner | None) -> list[Signal]:
    signals = monitor.tick() if monitor is not None else []
    if policies is not None:
        try:
            policies.tick()
        except Exception:
            log.exception("policies: tick failed")
    return signals


def _tick_controller(controller: Controller | None) -> list[Check]:
    if controller is None:
        return []
    try:
        return controller.tick()
    except Exception:  # the store may be down: try again next tick
        log.exception("rollout controller: tick failed")
        return []


def _sync(mirror: MirrorWriter | None) -> None:
    if mirror is None:
        return
    try:
        mirror.sync()
    except Exception:  # the registry may be down: the mirror ages and the server reads MLflow
        log.exception("registry mirror: sync failed")


def _silent(signals: list[Signal], checks: list[Check]) -> None:
    return None


def lower_thread_priority(by: int) -> None:
    """Lower the calling thread's CPU priority by ``by`` (at most to 19; Linux only).

    Linux keeps a nice value per thread, so this leaves the process's other threads alone;
    threads and processes started from this one inherit it. Elsewhere it does nothing.
    """
    if not by or not hasattr(os, "setpriority"):
        return
    with contextlib.suppress(OSError):
        tid = threading.get_native_id()
        current = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(current + by, MAX_NICE))


def _policies(settings: Settings, store: Store, names: list[str]) -> PolicyRunner | None:
    if settings.policy_file is None:
        return None
    rules, plans = load_policy_file(settings.policy_file)
    rules = [p for p in rules if p.model in names]
    sink = AlertSink(settings.alert_url, settings.alert_secret)
    events = DeploymentLog(store)
    retrainer = RetrainWorker(settings, plans, events)
    return PolicyRunner(rules, SignalLog(store), events, sink, retrainer)
