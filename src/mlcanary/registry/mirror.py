"""The registry, mirrored for a serving process that should not import MLflow.

MLflow is the heaviest thing a server would hold: importing it and opening its tracking
store costs ~100 MB of resident memory and ~1.3 s of start-up, only to resolve two aliases
and fetch files that never change (a registered version is immutable). So ``mlcanary
serve`` leaves it to its watch child, which holds MLflow anyway (its controller moves the
aliases):

- ``MirrorWriter`` (in the watch child) resolves each served name's ``champion`` and
  ``challenger`` every tick, keeps each such version's model directory (and its run's
  serving folder, once one is kept there) in a local cache under
  ``MLCANARY_HOME/cache/versions/``, and replaces ``registry.json`` in the folder the server
  gave it, atomically;
- ``MirroredRegistry`` (in the server) answers a ``ModelRegistry``'s reads from that file
  and the cache. Whatever the file cannot answer goes to MLflow itself (imported then):
  a name or version it does not hold, a file older than ``stale_after`` (the child is gone
  or stuck), a write. So the mirror can make a read later, never wrong.

A server starts before its child has opened MLflow (~2-3 s on a small machine). To answer
at once, each sync also keeps every name's entry beside its local copies, stamped with the
registry file's modification time and size (a SQLite registry, the default); until the
child's first file comes, a server believes a kept entry only while the registry file
still carries that stamp, that is, while nothing has written to the registry since the
entry was read. Other registries (a Postgres database, a tracking server) carry no stamp:
there the server waits for the child's first sync.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

from mlcanary.config import Settings
from mlcanary.errors import NotFound
from mlcanary.registry.versions import SERVING_FOLDER, ModelRegistry, VersionInfo
from mlcanary.types import Alias

log = logging.getLogger(__name__)

SNAPSHOT = "registry.json"
KEPT = "mirror.json"
"""Each name's entry of the last sync, in its cache folder, with the registry's stamp."""
RACY_NS = 2_000_000_000
"""A registry file written this recently (ns) gets no stamp: a write in the same tick of
the file system's clock might leave the modification time as it was."""
ALIASES: tuple[Alias, ...] = ("champion", "challenger")


def cache_root(settings: Settings) -> Path:
    """Where versions of this registry are kept locally (one folder per registry URI)."""
    key = hashlib.sha256(settings.registry_uri.encode()).hexdigest()[:12]
    return settings.home / "cache" / "versions" / key


def registry_stamp(uri: str) -> list[list[int] | None] | None:
    """Modification time and size of a SQLite registry's file and of its journals: while
    they are unchanged, nothing has written to the registry. None for another registry,
    or for a file written too recently to tell."""
    if not uri.startswith("sqlite:///"):  # SQLAlchemy's form, which MLflow takes
        return None
    database = uri.removeprefix("sqlite:///").split("?", 1)[0]
    if not database or database == ":memory:":
        return None
    stamp: list[list[int] | None] = []
    recent = time.time_ns() - RACY_NS
    for path in (Path(database), Path(f"{database}-wal"), Path(f"{database}-journal")):
        try:
            status = path.stat()
        except FileNotFoundError:
            stamp.append(None)
            continue
        if status.st_mtime_ns > recent:
            return None
        stamp.append([status.st_mtime_ns, status.st_size])
    return stamp if stamp[0] is not None else None


class MirrorWriter:
    """Keeps ``folder/registry.json`` and the local copies current (the MLflow side)."""

    def __init__(self, registry: ModelRegistry, names: list[str], folder: Path) -> None:
        self.registry = registry
        self.names = names
        self.folder = folder
        self.root = cache_root(registry.settings)

    def sync(self) -> None:
        """One round: every alias of every name; an unreachable registry keeps the last file
        (it then ages, and the server asks MLflow itself)."""
        stamp = registry_stamp(self.registry.uri)  # before reading: a write meanwhile shows
        models: dict[str, Any] = {}
        for name in self.names:
            if not self.registry.exists(name):
                continue  # the server asks MLflow, which says so in its own words
            try:
                models[name] = self._model(name)
            except NotFound:  # deleted meanwhile
                continue
        document = {"synced": time.time(), "registry": self.registry.uri, "models": models}
        _replace(self.folder / SNAPSHOT, json.dumps(document))
        if stamp is not None:
            for name, model in models.items():
                self._keep(name, model, stamp)

    def _keep(self, name: str, model: dict[str, Any], stamp: list[list[int] | None]) -> None:
        text = json.dumps({"registry": self.registry.uri, "stamp": stamp, "model": model})
        path = self.root / name / KEPT
        with contextlib.suppress(OSError):
            if path.read_text(encoding="utf-8") == text:
                return
        _replace(path, text)

    def _model(self, name: str) -> dict[str, Any]:
        aliases: dict[str, int] = {}
        versions: dict[str, Any] = {}
        for alias in ALIASES:
            number = self.registry.alias_version(name, alias)
            if number is None:
                continue
            aliases[alias] = number
            if str(number) not in versions:
                info = self.registry.version(name, number)
                versions[str(number)] = {**_encode(info), **self._copy(info)}
        return {"aliases": aliases, "versions": versions}

    def _copy(self, info: VersionInfo) -> dict[str, str | None]:
        """The version's local copy, made once; its serving folder once there is one."""
        where = self.root / info.name / f"{info.version}-{info.run_id or 'norun'}"
        model = where / "model"
        if not model.is_dir():
            _fill(model, lambda tmp: self.registry.download(info.name, info.version, tmp))
        serving = where / "serving"
        if not serving.is_dir():
            _fill(serving, lambda tmp: self.registry.kept(info, SERVING_FOLDER, tmp))
        return {"model": str(model), "serving": str(serving) if serving.is_dir() else None}


class MirroredRegistry(ModelRegistry):
    """A ``ModelRegistry`` whose reads come from a ``MirrorWriter``'s file when it can.

    Until the file comes, a name's kept entry answers while the registry file is as it was
    when the entry was read; otherwise the first read waits for the file (up to
    ``wait_seconds``, or until ``alive`` says the writer is gone); after that a read never
    waits.
    """

    def __init__(self, settings: Settings, folder: Path, *, stale_after: float,
                 wait_seconds: float = 120.0, alive: Callable[[], bool] | None = None) -> None:
        super().__init__(settings)
        self.folder = folder
        self.stale_after = stale_after
        self.wait_seconds = wait_seconds
        self.alive = alive
        self._waited = False
        self._warned = False
        self.root = cache_root(settings)

    def version(self, name: str, ref: int | str) -> VersionInfo:
        entry = self._entry(name, ref)
        return _decode(entry) if entry is not None else super().version(name, ref)

    def alias_version(self, name: str, alias: Alias) -> int | None:
        model = self._model(name)
        if model is None:
            return super().alias_version(name, alias)
        found = model["aliases"].get(alias)
        return int(found) if found is not None else None

    def download(self, name: str, ref: int | str, dst: Path | None = None) -> Path:
        """The local copy itself (read it; do not change it)."""
        entry = self._entry(name, ref)
        if entry is None:
            return super().download(name, ref, dst)
        return Path(entry["model"])

    def kept(self, info: VersionInfo, folder: str, dst: Path) -> Path | None:
        entry = self._entry(info.name, info.version) if folder == SERVING_FOLDER else None
        if entry is None or entry["serving"] is None:
            return super().kept(info, folder, dst)
        return Path(entry["serving"])

    # -- the file ----------------------------------------------------------------------------

    def _entry(self, name: str, ref: int | str) -> dict[str, Any] | None:
        model = self._model(name)
        if model is None:
            return None
        if str(ref).isdigit():
            found: dict[str, Any] | None = model["versions"].get(str(ref))
            return found  # None: not mirrored, MLflow is asked
        number = model["aliases"].get(str(ref))
        if number is None:  # the file is current: no version holds the alias
            raise NotFound(f"model '{name}': has no version or alias {ref!r}")
        aliased: dict[str, Any] = model["versions"][str(number)]
        return aliased

    def _model(self, name: str) -> dict[str, Any] | None:
        if not self._waited and not (self.folder / SNAPSHOT).is_file():
            kept = self._kept(name)
            if kept is not None:
                return kept
        snapshot = self._snapshot()
        if snapshot is None:
            return None
        model: dict[str, Any] | None = snapshot["models"].get(name)
        return model

    def _snapshot(self) -> dict[str, Any] | None:
        path = self.folder / SNAPSHOT
        if not self._waited:
            deadline = time.monotonic() + self.wait_seconds
            while not path.is_file() and time.monotonic() < deadline:
                if self.alive is not None and not self.alive():
                    break
                time.sleep(0.02)
            self._waited = True
        try:
            document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self._missing("no mirror file")
            return None
        age = time.time() - float(document["synced"])
        if document.get("registry") != self.uri or age > self.stale_after:
            self._missing(f"the mirror file is {age:.0f} s old")
            return None
        return document

    def _kept(self, name: str) -> dict[str, Any] | None:
        """The name's entry of the last sync, if nothing has written to the registry since."""
        try:
            document = json.loads((self.root / name / KEPT).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        stamp = registry_stamp(self.uri)
        if stamp is None or document["registry"] != self.uri or document["stamp"] != stamp:
            return None
        model: dict[str, Any] = document["model"]
        for entry in model["versions"].values():
            if not Path(entry["model"]).is_dir() or (
                    entry["serving"] is not None and not Path(entry["serving"]).is_dir()):
                return None  # the cache was cleared
        return model

    def _missing(self, why: str) -> None:
        if not self._warned:
            log.warning("registry mirror: %s; reading the registry itself", why)
            self._warned = True


def _replace(path: Path, text: str) -> None:
    """Write ``path`` in one step: readers see the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False,
                                     suffix=".tmp", encoding="utf-8") as tmp:
        tmp.write(text)
    Path(tmp.name).replace(path)


def _fill(target: Path, fetch: Callable[[Path], Path | None]) -> None:
    """Fetch into a fresh folder beside ``target``, then move it there in one step."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        (tmp / "fetched").mkdir()
        got = fetch(tmp / "fetched")
        if got is None:
            return
        try:
            got.replace(target)
        except OSError:  # another writer got there first: its copy is the same files
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _encode(info: VersionInfo) -> dict[str, Any]:
    data = asdict(info)
    data["created"] = info.created.isoformat()
    return data


def _decode(entry: dict[str, Any]) -> VersionInfo:
    return VersionInfo(
        name=entry["name"], version=int(entry["version"]), aliases=list(entry["aliases"]),
        created=datetime.fromisoformat(entry["created"]), run_id=entry["run_id"],
        source=entry["source"], metrics=dict(entry["metrics"]), tags=dict(entry["tags"]),
    )
