"""The watch loop in one process: the monitor in a low-priority thread, the controller not."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from mlcanary.config import Settings
from mlcanary.control.loop import lower_thread_priority, watch
from tests.serve.conftest import registered_churn

linux = pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="per-thread nice: Linux")


def own_nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


@linux
def test_lowering_a_threads_priority_leaves_the_others_alone() -> None:
    before = own_nice()
    seen: list[int] = []

    def lowered() -> None:
        lower_thread_priority(5)
        seen.append(own_nice())

    thread = threading.Thread(target=lowered)
    thread.start()
    thread.join(30)
    assert seen == [min(before + 5, 19)]
    assert own_nice() == before


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    home = registered_churn(tmp_path_factory.mktemp("loop"), 600, seed=3)
    return Settings(home=home, monitor_seconds=0.2)


@linux
def test_the_monitor_ticks_in_its_own_low_priority_thread(settings: Settings) -> None:
    stop = threading.Event()
    before = own_nice()
    ticks: list[tuple[str, int]] = []

    def report(signals: list[object], checks: list[object]) -> None:
        ticks.append((threading.current_thread().name, own_nice()))
        if len(ticks) >= 2:
            stop.set()

    worker = threading.Thread(target=watch, args=(settings, ["churn"], stop),
                              kwargs={"report": report, "monitor_nice": 19})
    worker.start()
    worker.join(60)
    assert not worker.is_alive(), "the watch did not stop when asked"
    assert ticks[:2] == [("mlcanary-monitor", min(before + 19, 19))] * 2
    assert own_nice() == before


def test_a_crash_in_the_monitor_thread_stops_the_watch_and_is_raised(settings: Settings) -> None:
    def report(signals: list[object], checks: list[object]) -> None:
        raise RuntimeError("monitor broke")

    with pytest.raises(RuntimeError, match="monitor broke"):
        watch(settings, ["churn"], threading.Event(), report=report, monitor_nice=19)


def test_a_nice_out_of_range_is_refused(settings: Settings) -> None:
    with pytest.raises(ValueError, match="monitor_nice: expected 0 to 19; got 20"):
        watch(settings, ["churn"], threading.Event(), monitor_nice=20)
