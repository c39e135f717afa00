"""The package's source at an earlier commit and in the working tree, side by side.

The ``*_versions.py`` benchmarks run each copy in its own process (``PYTHONPATH`` set to
the copy), so that a change spanning several modules can be timed against what it
replaced on the same machine state.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def sources(rev: str, where: Path) -> dict[str, Path]:
    """``{"before": src of rev, "now": src of the working tree}``, copied under ``where``.

    The current copy includes uncommitted changes: it is what the working tree would run.
    """
    earlier, current = where / "earlier", where / "current"
    earlier.mkdir()
    archive = subprocess.run(["git", "archive", rev, "src"], cwd=ROOT, check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(earlier)], input=archive, check=True)
    current.mkdir()
    subprocess.run(["cp", "-r", str(ROOT / "src"), str(current)], check=True)
    return {"before": earlier / "src", "now": current / "src"}
