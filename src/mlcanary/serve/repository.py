"""The models a server holds: each name's champion, loaded from the registry."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import cast

import pandas as pd

from mlcanary.errors import NotFound
from mlcanary.models.adapter import ModelAdapter, open_version
from mlcanary.models.runtime import Runtime
from mlcanary.registry.versions import ModelRegistry, VersionInfo
from mlcanary.serve import kept as kept_choice
from mlcanary.serve.batcher import Batcher
from mlcanary.serve.choice import RuntimeChoice, choose
from mlcanary.signature import Signature

log = logging.getLogger(__name__)


@dataclass
class ServedModel:
    """One loaded version: its contract, its runtime, and where it came from."""

    name: str
    version: int
    signature: Signature
    runtime: Runtime
    load_seconds: float
    aliases: list[str] = field(default_factory=list)
    runtime_note: str = ""
    """Which runtime serves and why (a faster one only after matching the native one)."""
    batcher: Batcher | None = None
    """Set while the server runs: requests go through it to ``runtime``."""
    active: int = 0
    """Requests holding this version; a swapped-out version is retired when it reaches 0."""

    @contextlib.contextmanager
    def held(self) -> Iterator[ServedModel]:
        """Hold this version for one request (the event loop is the only writer)."""
        self.active += 1
        try:
            yield self
        finally:
            self.active -= 1


class ModelRepository:
    """Loads the champion of each name; answers lookups by name and optional version."""

    def __init__(self, registry: ModelRegistry, names: list[str], alias: str = "champion") -> None:
        self.registry = registry
        self.names = names
        self.alias = alias
        self.models: dict[str, ServedModel] = {}
        self.challengers: dict[str, ServedModel] = {}
        """The challenger of each name with an active rollout (loaded by the watcher)."""

    def load(self) -> None:
        for name in self.names:
            self.models[name] = self.load_version(name, self.aliased_version(name))

    def aliased_version(self, name: str) -> int:
        """The version the alias points at now, in the registry."""
        return self.registry.version(name, self.alias).version

    def load_version(self, name: str, version: int) -> ServedModel:
        """Download, load and check one version: it must answer its own reference rows.

        A runtime choice kept with the version (``serve/kept.py``) is tried first: a kept
        ONNX plan serves without unpickling the pipeline."""
        start = time.perf_counter()
        info = self.registry.version(name, version)
        wanted = self.registry.settings.runtime
        kept = kept_choice.read(self.registry, info) if wanted in ("auto", "onnx") else None
        plan = kept is not None and kept.plan is not None
        model = open_version(self.registry, name, version, predictor=not plan)
        signature = model.signature
        reference = model.sample()
        runtime: Runtime
        served = kept.onnx(signature, reference) if kept is not None and plan else None
        if served is not None:
            runtime, why = served
        else:
            if plan:
                model = open_version(self.registry, name, version)
            runtime, why = self._choose(info, model, reference, wanted, kept)
        if len(reference):  # a model logged without an input example has no rows to check
            check = runtime.predict(reference)
            if len(check.predicted) != len(reference):
                raise RuntimeError(
                    f"model '{name}' version {info.version}: failed its load check")
        seconds = time.perf_counter() - start
        log.info("loaded %s version %s in %.2f s: %s", name, info.version, seconds, why)
        return ServedModel(name, info.version, signature, runtime, seconds, info.aliases, why)

    def _choose(
        self, info: VersionInfo, model: ModelAdapter, reference: pd.DataFrame, wanted: str,
        kept: kept_choice.Kept | None,
    ) -> tuple[Runtime, str]:
        """Choose afresh (keeping an ``auto`` choice), or start where a kept one did."""
        if model.pipeline is None:
            return model.native(), f"native: the {model.flavor}'s own predict"
        start = kept.runtime if kept is not None and kept.runtime != "onnx" else None
        choice = choose(model.pipeline, model.signature, reference,
                        cast(RuntimeChoice, wanted), start)
        if wanted == "auto" and (kept is None or kept.runtime != choice.runtime.kind):
            kept_choice.write(self.registry, info, choice, len(reference))
        return choice.runtime, choice.note

    def get(self, name: str, version: str | None = None) -> ServedModel:
        model = self.models.get(name)
        if model is None:
            raise NotFound(
                f"model '{name}': not served here; served: {', '.join(self.models) or 'none'}"
            )
        if version is None or version == str(model.version):
            return model
        challenger = self.challengers.get(name)
        if challenger is not None and version == str(challenger.version):
            return challenger
        loaded = [str(m.version) for m in (model, challenger) if m is not None]
        raise NotFound(
            f"model '{name}': version {version} is not loaded; loaded: {', '.join(loaded)}"
        )
