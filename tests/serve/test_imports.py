"""The serving process imports what answering needs: no tuning, plotting or training code.

Read from the server's own ``PYTHONPROFILEIMPORTTIME`` profile, so the test sees what the
real entry point imports, model load included. Each profile line is nested under the
module that imported it, which tells who pulled a module in.
"""

from __future__ import annotations

import json
import re
import signal
import urllib.request
from pathlib import Path

import pytest

from tests.serve.conftest import Running, registered_churn, running_server
from tests.waiting import wait_until

NEVER = re.compile(r"^(optuna|plotly)(\.|$)|^mlcanary\.train\.(?!estimators$|transformers$)")
"""Never in the server: Optuna, Plotly, and mlcanary's training code (``estimators`` and
``transformers`` hold the classes a registered pipeline unpickles into)."""

NOT_FROM_MLCANARY = re.compile(r"^sklearn\.(model_selection|metrics)(\.|$)")
"""scikit-learn's training modules: no mlcanary module imports them in the server.
(scikit-learn's own ``linear_model`` imports ``model_selection`` when a pickled
``ColumnTransformer`` loads; that leaves with scikit-learn itself.)"""


def import_tree(lines: list[str]) -> list[tuple[str, str]]:
    """(module, importer) for every line of an import-time profile.

    A module's line comes after those it imported, one level less indented than them."""
    entries = []
    for line in lines:
        name = line.rsplit("|", 1)[1]
        entries.append((len(name) - len(name.lstrip()), name.strip()))
    pairs = []
    for i, (depth, module) in enumerate(entries):
        importer = next((m for d, m in entries[i + 1:] if d < depth), "")
        pairs.append((module, importer))
    return pairs


def profiled(log: str) -> list[tuple[str, str]]:
    """The import tree of a server's log (its ``PYTHONPROFILEIMPORTTIME`` lines)."""
    return import_tree([ln for ln in log.splitlines()
                        if ln.startswith("import time:") and "imported package" not in ln])


def test_the_import_tree_names_who_imported_each_module() -> None:
    profile = [
        "import time: self [us] | cumulative | imported package",
        "import time:       1 |          1 |     leaf",
        "import time:       1 |          2 |   middle",
        "import time:       1 |          3 | top",
    ]
    assert import_tree(profile[1:]) == [("leaf", "middle"), ("middle", "top"), ("top", "")]


def test_the_server_imports_no_training_tuning_or_plotting_code(tmp_path: Path) -> None:
    home = registered_churn(tmp_path, 600, seed=4)
    with running_server(home, ["churn"], PYTHONPROFILEIMPORTTIME="1",
                        MLCANARY_MONITOR="false") as running:
        log = running.log
    tree = profiled(Path(log).read_text())
    assert len(tree) > 100, "no import profile: PYTHONPROFILEIMPORTTIME had no effect"
    assert "mlcanary.serve.app" in {m for m, _ in tree}
    assert sorted({m for m, _ in tree if NEVER.search(m)}) == []
    assert sorted({f"{m} (from {by})" for m, by in tree
                   if NOT_FROM_MLCANARY.search(m) and by.startswith("mlcanary")}) == []


KEPT = re.compile(r"^(sklearn|lightgbm|skl2onnx|onnxmltools|mlflow)(\.|$)")
"""Not even imported when the version's ONNX plan was kept from its first start and the
watch child mirrors the registry (``registry/mirror.py``)."""

MODULES_PROBE = Path(__file__).parent / "modules_probe"


def modules_of(running: Running, written: Path) -> set[str]:
    """The modules a server started with ``modules_probe`` has imported (asked by SIGUSR1)."""
    listing = written / f"{running.proc.pid}.txt"
    running.proc.send_signal(signal.SIGUSR1)

    def listed() -> bool:  # a request wakes the event loop, which runs the signal handler
        urllib.request.urlopen(f"{running.url}/v2/health/live", timeout=10).close()
        return listing.is_file()

    wait_until(listed, timeout=30, what="the server's list of modules")
    return set(listing.read_text().split())


@pytest.mark.slow
def test_a_second_start_serves_the_kept_plan_without_the_pipeline_or_mlflow(
    tmp_path: Path,
) -> None:
    """The first start converts and keeps the ONNX plan. The second, with the monitor on as
    users run it, serves the kept plan and reads the registry through its watch child:
    neither scikit-learn, LightGBM, the converters nor MLflow (~100 MB) in the server."""
    home = registered_churn(tmp_path, 600, seed=4)
    written = tmp_path / "modules"
    written.mkdir()
    env = {"PYTHONPATH": str(MODULES_PROBE), "MLCANARY_TEST_MODULES": str(written),
           "MLCANARY_MONITOR_SECONDS": "0.5"}
    starts = []
    for _ in range(2):
        with running_server(home, ["churn"], **env) as running:
            with urllib.request.urlopen(f"{running.url}/v2/models/churn", timeout=10) as resp:
                note = json.load(resp)["parameters"]["runtime_note"]
            starts.append((note, modules_of(running, written)))
    (first_note, first), (second_note, second) = starts
    assert first_note.startswith("onnx runtime") and "kept" not in first_note
    assert second_note.startswith("onnx runtime") and "kept with the version" in second_note
    assert {"mlcanary.serve.onnx", "mlcanary.registry.mirror"} <= second
    assert sorted(m for m in second if KEPT.search(m)) == []
    assert any(KEPT.search(m) for m in first)  # the first start converted
