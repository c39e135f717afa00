"""Test aid, on ``PYTHONPATH`` only in tests: with ``MLCANARY_TEST_MODULES`` set to a folder,
a Python process started with it writes the names of the modules it has imported to
``<folder>/<pid>.txt`` when it receives SIGUSR1 (uvicorn ends a server by re-raising
SIGTERM, so exit handlers never run). A test signals the process it started and reads
its file."""

import os
import signal
import sys
from pathlib import Path

_folder = os.environ.get("MLCANARY_TEST_MODULES")
if _folder:

    def _write(signum: int, frame: object) -> None:
        path = Path(_folder) / f"{os.getpid()}.txt"
        partial = path.with_suffix(".tmp")
        partial.write_text("\n".join(sorted(sys.modules)), encoding="utf-8")
        partial.replace(path)

    signal.signal(signal.SIGUSR1, _write)
