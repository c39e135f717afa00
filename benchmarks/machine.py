"""Facts about the machine and packages, recorded beside every benchmark figure."""

from __future__ import annotations

import os
import platform
from datetime import datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any


def machine(packages: tuple[str, ...] = ("mlcanary",)) -> dict[str, Any]:
    """Date, CPU, cores, memory, OS, Python and the given packages' versions."""
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    models = [line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")]
    meminfo = Path("/proc/meminfo").read_text().split()
    return {
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": models[0] if models else "?",
        "cores": os.cpu_count(),
        "memory_gib": round(int(meminfo[meminfo.index("MemTotal:") + 1]) / 2**20, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        **{package: version(package) for package in packages},
    }
