"""The registry mirror: a server's reads answered from its watch child's copy, not MLflow.

Over a real MLflow registry (SQLite) with versions a real training published. Each read
of the mirror is compared with the same read of the registry; a mirror that cannot
answer (a name or version it does not hold, a stale file, no file) must hand the read to
MLflow, so it is never wrong, only later.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from mlcanary.config import Settings
from mlcanary.errors import NotFound
from mlcanary.registry import mirror
from mlcanary.registry.mirror import KEPT, SNAPSHOT, MirroredRegistry, MirrorWriter, cache_root
from mlcanary.registry.versions import BUNDLE_DIR, SERVING_FOLDER, ModelRegistry
from tests.serve.conftest import registered_churn


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Versions 1 (champion), 2 (challenger) and 3 (no alias) of ``churn``."""
    home = registered_churn(tmp_path_factory.mktemp("mirror"), 400, seed=3, versions=3)
    registry = ModelRegistry(Settings(home=home))
    registry.set_alias("churn", "challenger", 2)
    return home


def mirror_of(home: Path, folder: Path, **options: float) -> tuple[ModelRegistry, MirroredRegistry]:
    settings = Settings(home=home)
    registry = ModelRegistry(settings)
    MirrorWriter(registry, ["churn", "absent"], folder).sync()
    return registry, MirroredRegistry(settings, folder, stale_after=options.get("stale", 60.0),
                                      wait_seconds=options.get("wait", 5.0))


def test_the_mirror_answers_every_served_read_as_the_registry_does_without_mlflow(
    home: Path, tmp_path: Path
) -> None:
    registry, mirrored = mirror_of(home, tmp_path / "mirror")
    for ref in ("champion", "challenger", 1, 2, "1"):
        assert mirrored.version("churn", ref) == registry.version("churn", ref)
    assert mirrored.alias_version("churn", "champion") == 1
    assert mirrored.alias_version("churn", "challenger") == 2
    local = mirrored.download("churn", "champion")
    assert local.is_relative_to(cache_root(Settings(home=home)))
    fetched = registry.download("churn", "champion", tmp_path / "fetched")
    for name in ("signature.json", "profile.json", "reference.parquet"):
        assert (local / BUNDLE_DIR / name).read_bytes() == \
            (fetched / BUNDLE_DIR / name).read_bytes()
    assert mirrored._client is None, "a mirrored read opened MLflow"


def test_an_alias_moved_in_the_registry_reaches_the_mirror_at_the_next_sync(
    home: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "mirror"
    registry, mirrored = mirror_of(home, folder)
    writer = MirrorWriter(registry, ["churn"], folder)
    try:
        registry.remove_alias("churn", "challenger")
        assert mirrored.alias_version("churn", "challenger") == 2  # not synced yet
        writer.sync()
        assert mirrored.alias_version("churn", "challenger") is None
        with pytest.raises(NotFound, match="has no version or alias 'challenger'"):
            mirrored.version("churn", "challenger")
        assert mirrored._client is None
    finally:
        registry.set_alias("churn", "challenger", 2)


def test_what_the_mirror_does_not_hold_is_read_from_the_registry(
    home: Path, tmp_path: Path
) -> None:
    registry, mirrored = mirror_of(home, tmp_path / "mirror")
    assert mirrored.version("churn", 3) == registry.version("churn", 3)  # no alias: not kept
    assert mirrored.download("churn", 3, tmp_path / "v3").is_relative_to(tmp_path / "v3")
    with pytest.raises(NotFound, match="model 'absent': not in the registry"):
        mirrored.version("absent", "champion")


def test_a_stale_or_missing_mirror_file_is_not_believed(home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "mirror"
    mirror_of(home, folder)
    document = json.loads((folder / SNAPSHOT).read_text())
    document["synced"] = time.time() - 120
    document["models"]["churn"]["aliases"]["champion"] = 2  # what a stale file might say
    (folder / SNAPSHOT).write_text(json.dumps(document))
    stale = MirroredRegistry(Settings(home=home), folder, stale_after=60.0)
    assert stale.version("churn", "champion").version == 1
    empty = tmp_path / "empty"
    gone = MirroredRegistry(Settings(home=home), empty, stale_after=60.0, wait_seconds=60.0,
                            alive=lambda: False)
    began = time.monotonic()
    assert gone.version("churn", "champion").version == 1
    assert time.monotonic() - began < 30, "waited for a writer that is gone"


def test_a_serving_folder_kept_after_the_first_sync_is_copied_at_a_later_one(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "mirror"
    (tmp_path / "own").mkdir()
    settings = Settings(home=registered_churn(tmp_path / "own", 300, seed=5))
    registry = ModelRegistry(settings)
    writer = MirrorWriter(registry, ["churn"], folder)
    writer.sync()
    mirrored = MirroredRegistry(settings, folder, stale_after=60.0)
    info = mirrored.version("churn", "champion")
    assert json.loads((folder / SNAPSHOT).read_text())["models"]["churn"]["versions"]["1"][
        "serving"] is None
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "choice.json").write_text('{"runtime": "native"}')
    registry.keep(info, SERVING_FOLDER, kept)
    writer.sync()
    local = mirrored.kept(info, SERVING_FOLDER, tmp_path / "unused")
    assert local is not None and local.is_relative_to(cache_root(settings))
    assert json.loads((local / "choice.json").read_text()) == {"runtime": "native"}
    assert mirrored._client is None


def test_a_kept_entry_answers_before_the_first_file_only_while_the_registry_is_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "own").mkdir()
    settings = Settings(home=registered_churn(tmp_path / "own", 300, seed=6))
    registry = ModelRegistry(settings)
    database = settings.home / "mlflow.db"
    with monkeypatch.context() as patch:  # every write counts as a moment ago
        patch.setattr(mirror, "RACY_NS", time.time_ns())
        MirrorWriter(registry, ["churn"], tmp_path / "first").sync()
    assert not (cache_root(settings) / "churn" / KEPT).exists(), \
        "a registry written a moment ago was stamped"
    old = time.time() - 60
    os.utime(database, (old, old))  # as a registry last written a minute ago
    MirrorWriter(registry, ["churn"], tmp_path / "first").sync()

    def starting() -> MirroredRegistry:  # a server whose child has written nothing yet
        return MirroredRegistry(settings, tmp_path / "none", stale_after=60.0,
                                wait_seconds=60.0, alive=lambda: True)

    began = time.monotonic()
    early = starting()
    assert early.version("churn", "champion") == registry.version("churn", 1)
    assert early.download("churn", "champion").is_relative_to(cache_root(settings))
    assert time.monotonic() - began < 30 and early._client is None

    registry.set_alias("churn", "challenger", 1)  # a write: the kept entry no longer holds
    moved = MirroredRegistry(settings, tmp_path / "none", stale_after=60.0,
                             alive=lambda: False)
    assert moved.alias_version("churn", "challenger") == 1
    assert moved._client is not None, "a kept entry was believed after the registry changed"

    os.utime(database, (old, old))
    MirrorWriter(registry, ["churn"], tmp_path / "first").sync()
    assert starting().alias_version("churn", "challenger") == 1
    kept = cache_root(settings) / "churn" / KEPT
    document = json.loads(kept.read_text())
    document["model"]["versions"]["1"]["model"] = str(tmp_path / "cleared")
    kept.write_text(json.dumps(document))
    cleared = MirroredRegistry(settings, tmp_path / "none", stale_after=60.0,
                               alive=lambda: False)
    assert cleared.download("churn", "champion", tmp_path / "fetched").is_relative_to(
        tmp_path / "fetched"), "a kept entry whose local copy is gone was believed"
