"""The models a server holds: each name's champion, loaded from the registry."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from mlcanary.errors import NotFound
from mlcanary.registry.versions import BUNDLE_DIR, ModelRegistry
from mlcanary.serve.batcher import Batcher
from mlcanary.serve.runtime import NativeRuntime, Runtime
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
    batcher: Batcher | None = None
    """Set while the server runs: requests go through it to ``runtime``."""


class ModelRepository:
    """Loads the champion of each name; answers lookups by name and optional version."""

    def __init__(self, registry: ModelRegistry, names: list[str], alias: str = "champion") -> None:
        self.registry = registry
        self.names = names
        self.alias = alias
        self.models: dict[str, ServedModel] = {}

    def load(self) -> None:
        for name in self.names:
            self.models[name] = self._load(name)

    def _load(self, name: str) -> ServedModel:
        import mlflow.sklearn

        start = time.perf_counter()
        info = self.registry.version(name, self.alias)
        root = Path(self.registry.download(name, info.version))
        bundle = root / BUNDLE_DIR
        signature = Signature.from_dict(json.loads((bundle / "signature.json").read_text()))
        pipeline = mlflow.sklearn.load_model(str(root))
        runtime = NativeRuntime(pipeline, signature)
        seconds = time.perf_counter() - start
        log.info(
            "loaded %s version %s (%s runtime) in %.2f s", name, info.version, runtime.kind, seconds
        )
        return ServedModel(name, info.version, signature, runtime, seconds, info.aliases)

    def get(self, name: str, version: str | None = None) -> ServedModel:
        model = self.models.get(name)
        if model is None:
            raise NotFound(
                f"model '{name}': not served here; served: {', '.join(self.models) or 'none'}"
            )
        if version is not None and version != str(model.version):
            raise NotFound(
                f"model '{name}': version {version} is not loaded; loaded: {model.version}"
            )
        return model
