"""Model versions and their aliases, over an MLflow registry.

A version is one MLflow model directory (the scikit-learn flavour, so
``mlflow.sklearn.load_model("models:/NAME@champion")`` works) with an ``mlcanary/``
folder beside the pickled pipeline holding the signature, reference profile and
sample, metrics and the HTML report. The run that produced it carries the CV means
as metrics (``roc_auc``, ``roc_auc_std``, ``baseline_roc_auc``, ``linear_roc_auc``).

Registration is all or nothing: if any step fails, the run, the version and a
registered model created for it are deleted again.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlcanary.config import Settings
from mlcanary.errors import NotFound
from mlcanary.types import METRIC_NAMES, Alias

log = logging.getLogger(__name__)

BUNDLE_DIR = "mlcanary"
MODEL_PATH = "model"
SERVING_FOLDER = "serving/v1"
"""The run's artifact folder where a server keeps its runtime choice (``serve/kept.py``);
the number changes when what is kept does."""


@dataclass
class VersionInfo:
    """One registered version, as ``mlcanary models`` shows it."""

    name: str
    version: int
    aliases: list[str]
    created: datetime
    run_id: str
    source: str
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "aliases": sorted(self.aliases),
            "created": self.created.isoformat(),
            "run_id": self.run_id,
            "task": self.tags.get("mlcanary.task"),
            "model": self.tags.get("mlcanary.model"),
            "metrics": self.metrics,
        }


class ModelRegistry:
    """Register, list and load model versions; the only module that talks to MLflow."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.uri = settings.registry_uri
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
            from mlflow import MlflowClient

            if self.settings.tracking_uri is None:
                self.settings.home.mkdir(parents=True, exist_ok=True)
            self._client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        return self._client

    def register(
        self,
        name: str,
        pipeline: Any,
        *,
        files: Mapping[str, bytes | str],
        metrics: Mapping[str, float],
        params: Mapping[str, Any],
        tags: Mapping[str, str],
        input_example: Any,
        promote: bool = False,
    ) -> VersionInfo:
        """Store ``pipeline`` with ``files`` as a new version of ``name`` and alias it.

        The first version of a name becomes ``champion``; later ones ``challenger``
        unless ``promote``.
        """
        import mlflow.sklearn
        from mlflow.entities import Metric, Param, RunTag

        client = self.client
        experiment_id = self._experiment(name)
        run = client.create_run(experiment_id, run_name=f"{name}-train", tags=dict(tags))
        run_id = run.info.run_id
        created_model = version = None
        try:
            with tempfile.TemporaryDirectory() as tmp:
                model_dir = Path(tmp) / MODEL_PATH
                mlflow.sklearn.save_model(
                    pipeline,
                    str(model_dir),
                    serialization_format="cloudpickle",
                    signature=_mlflow_signature(input_example),
                    pip_requirements=_requirements(),
                )
                bundle = model_dir / BUNDLE_DIR
                bundle.mkdir()
                for filename, content in files.items():
                    target = bundle / filename
                    if isinstance(content, bytes):
                        target.write_bytes(content)
                    else:
                        target.write_text(content, encoding="utf-8")
                client.log_artifacts(run_id, str(model_dir), MODEL_PATH)
            now = int(datetime.now(UTC).timestamp() * 1000)
            client.log_batch(
                run_id,
                metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items() if v == v],
                params=[Param(k, str(v)[:6000]) for k, v in params.items()],
                tags=[RunTag("mlcanary.registered_name", name)],
            )
            client.set_terminated(run_id)
            if not self.exists(name):
                client.create_registered_model(name, description="Trained by mlcanary")
                created_model = name
            source = f"{run.info.artifact_uri}/{MODEL_PATH}"
            mv = client.create_model_version(name, source, run_id=run_id, tags=dict(tags))
            version = int(mv.version)
            has_champion = self._alias_version(name, "champion") is not None
            alias: Alias = "champion" if promote or not has_champion else "challenger"
            client.set_registered_model_alias(name, alias, str(version))
        except BaseException:
            self._undo(run_id, name, version, created_model)
            raise
        return self.version(name, version)

    def names(self) -> list[str]:
        return sorted(m.name for m in self.client.search_registered_models())

    def versions(self, name: str) -> list[VersionInfo]:
        """Every version of ``name``, oldest first."""
        if not self.exists(name):
            known = ", ".join(self.names()) or "none"
            raise NotFound(f"model '{name}': not in the registry; registered: {known}")
        found = self.client.search_model_versions(f"name = '{_quote(name)}'")
        aliases: dict[int, list[str]] = {}
        for alias, number in (self.client.get_registered_model(name).aliases or {}).items():
            aliases.setdefault(int(number), []).append(alias)
        infos = [self._info(mv, aliases.get(int(mv.version), [])) for mv in found]
        return sorted(infos, key=lambda v: v.version)

    def version(self, name: str, ref: int | str) -> VersionInfo:
        """A version by number or alias (``champion``, ``challenger``)."""
        return self._info(self._model_version(name, ref))

    def set_alias(self, name: str, alias: Alias, version: int) -> None:
        self.client.set_registered_model_alias(name, alias, str(version))

    def remove_alias(self, name: str, alias: Alias) -> None:
        """Drop ``alias`` from whichever version holds it (no-op when none does)."""
        if self._alias_version(name, alias) is not None:
            self.client.delete_registered_model_alias(name, alias)

    def alias_version(self, name: str, alias: Alias) -> int | None:
        """The version ``alias`` points at, or None."""
        return self._alias_version(name, alias)

    def download(self, name: str, ref: int | str, dst: Path | None = None) -> Path:
        """Fetch a version's model directory (pipeline and ``mlcanary/`` bundle) locally."""
        import mlflow.artifacts

        mv = self._model_version(name, ref)
        where = dst or Path(tempfile.mkdtemp(prefix=f"mlcanary-{name}-v{mv.version}-"))
        return Path(
            # Where the files are, as this registry says: a ``models:/`` source (a model
            # MLflow 3 logged) would resolve in the process's default tracking store.
            mlflow.artifacts.download_artifacts(
                artifact_uri=self.client.get_model_version_download_uri(name, mv.version),
                dst_path=str(where))
        )

    def kept(self, info: VersionInfo, folder: str, dst: Path) -> Path | None:
        """Files kept beside a version, in its run's artifact ``folder``; None if none."""
        if not info.run_id or not self.client.list_artifacts(info.run_id, folder):
            return None
        return Path(self.client.download_artifacts(info.run_id, folder, str(dst)))

    def keep(self, info: VersionInfo, folder: str, src: Path) -> None:
        """Keep the files of ``src`` beside a version, in its run's artifact ``folder``
        (the model directory the version points at is never changed)."""
        if not info.run_id:
            raise NotFound(f"model '{info.name}' version {info.version}: has no run")
        self.client.log_artifacts(info.run_id, str(src), folder)

    def load(self, name: str, ref: int | str = "champion") -> Any:
        """The fitted pipeline of a version, through MLflow's scikit-learn loader."""
        import mlflow.sklearn

        with tempfile.TemporaryDirectory(prefix=f"mlcanary-{name}-") as tmp:
            return mlflow.sklearn.load_model(str(self.download(name, ref, Path(tmp))))

    def bundle(self, name: str, ref: int | str, filename: str) -> Any:
        """One JSON file of a version's ``mlcanary/`` bundle, parsed."""
        with tempfile.TemporaryDirectory(prefix=f"mlcanary-{name}-") as tmp:
            path = self.download(name, ref, Path(tmp)) / BUNDLE_DIR / filename
            return json.loads(path.read_text(encoding="utf-8"))

    # -- internals ---------------------------------------------------------------------------

    def _experiment(self, name: str) -> str:
        exp_name = f"mlcanary/{name}"
        found = self.client.get_experiment_by_name(exp_name)
        if found is not None:
            return str(found.experiment_id)
        location = None
        if self.settings.tracking_uri is None:
            location = (self.settings.artifact_root / name).as_uri()
        return str(self.client.create_experiment(exp_name, artifact_location=location))

    def exists(self, name: str) -> bool:
        """Whether a registered model of this name exists."""
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(name)
        except MlflowException:
            return False
        return True

    def _alias_version(self, name: str, alias: str) -> int | None:
        from mlflow.exceptions import MlflowException

        try:
            return int(self.client.get_model_version_by_alias(name, alias).version)
        except MlflowException:
            return None

    def _model_version(self, name: str, ref: int | str) -> Any:
        from mlflow.exceptions import MlflowException

        if not self.exists(name):
            known = ", ".join(self.names()) or "none"
            raise NotFound(f"model '{name}': not in the registry; registered: {known}")
        try:
            if isinstance(ref, int) or str(ref).isdigit():
                return self.client.get_model_version(name, str(ref))
            return self.client.get_model_version_by_alias(name, str(ref))
        except MlflowException as exc:
            raise NotFound(f"model '{name}': has no version or alias {ref!r}") from exc

    def _info(self, mv: Any, aliases: list[str] | None = None) -> VersionInfo:
        run = self.client.get_run(mv.run_id) if mv.run_id else None
        metrics = dict(run.data.metrics) if run else {}
        return VersionInfo(
            name=mv.name,
            version=int(mv.version),
            aliases=sorted(aliases if aliases is not None else (mv.aliases or [])),
            created=datetime.fromtimestamp(mv.creation_timestamp / 1000, tz=UTC),
            run_id=mv.run_id or "",
            source=mv.source,
            metrics={k: v for k, v in metrics.items() if k in _SCORER_NAMES},
            tags=dict(mv.tags or {}),
        )

    def _undo(self, run_id: str, name: str, version: int | None, created_model: str | None) -> None:
        """Best-effort removal of whatever a failed registration wrote."""
        client = self.client
        for step in (
            (lambda: client.delete_model_version(name, str(version))) if version else None,
            (lambda: client.delete_registered_model(created_model)) if created_model else None,
            lambda: client.delete_run(run_id),
        ):
            if step is None:
                continue
            try:
                step()
            except Exception:  # cleanup must not hide the original error
                log.warning("could not undo part of a failed registration of %s", name)


_SCORER_NAMES = frozenset(METRIC_NAMES)


def _mlflow_signature(example: Any) -> Any:
    """MLflow's signature of the raw columns, as typed in the training file.

    MLflow warns that integer columns cannot hold missing values; declaring them as
    double instead makes it refuse integer input, which is worse. mlcanary's own
    ``signature.json`` is what its server validates against.
    """
    import warnings

    from mlflow.models import infer_signature

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return infer_signature(example)


def _quote(name: str) -> str:
    return name.replace("'", "\\'")


def _requirements() -> list[str]:
    """Pinned versions of what loading the pipeline needs."""
    from importlib.metadata import version

    packages = ("mlcanary", "scikit-learn", "lightgbm", "pandas", "numpy", "cloudpickle")
    return [f"{p}=={version(p)}" for p in packages]
