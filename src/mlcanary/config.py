"""Typed settings: flags > environment (``MLCANARY_*``) > ``mlcanary.toml`` > defaults."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from mlcanary.errors import InvalidInput


class Settings(BaseSettings):
    """Where state lives and the knobs shared by every command."""

    model_config = SettingsConfigDict(
        env_prefix="MLCANARY_",
        toml_file="mlcanary.toml",
        extra="ignore",
        validate_default=True,
    )

    home: Path = Field(default=Path(".mlcanary"))
    """Directory holding the registry, the store and reports."""

    tracking_uri: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "MLCANARY_TRACKING_URI"),
    )
    """MLflow tracking/registry URI; a SQLite file under ``home`` when unset."""

    reference_rows: int = Field(default=10_000, ge=100)
    """Cap on the held-out sample kept as the reference profile of a version."""

    max_onehot_categories: int = Field(default=20, ge=2)
    """Categorical columns with more distinct values are target-encoded, not one-hot."""

    seed: int = 0
    """Seed for fold assignment, subsampling and model randomness."""

    threads: int = Field(default_factory=lambda: max(1, (os.cpu_count() or 1) - 1), ge=1)
    """Threads a model may use. One core is left free by default: LightGBM's OpenMP
    threads slow down 20-40x when another busy process competes for every core."""

    max_request_bytes: int = Field(default=64 * 2**20, ge=1024)
    """Largest request body the server reads; larger ones get 413."""

    unseen_categories: Literal["reject", "missing"] = "reject"
    """A category the model never saw: refuse the request (400) or treat it as missing."""

    runtime: Literal["auto", "native", "compiled", "onnx"] = "auto"
    """Which runtime serves: ``auto`` takes the first of onnx, compiled, native that matches
    the native pipeline on the version's reference rows; another value forces one."""

    max_batch_size: int = Field(default=512, ge=1)
    """Most rows one predict call takes when concurrent requests are merged."""

    max_batch_delay_ms: float = Field(default=0.0, ge=0.0)
    """Extra wait for more rows once a request arrives; 0 batches only what queues anyway."""

    max_queue_rows: int = Field(default=20_000, ge=1)
    """Rows waiting per model before new requests are refused with 503."""

    poll_seconds: float = Field(default=5.0, ge=0.0)
    """How often the server checks whether a served alias moved (0: never; no hot swap)."""

    access_log: bool = True
    """One JSON line per inference request (id, model, version, status, latency)."""

    store_url: str | None = None
    """Database of the prediction log and feedback (``postgresql://...`` or any SQLAlchemy
    URL); a SQLite file under ``home`` when unset."""

    log_sample_rate: float = Field(default=1.0, ge=0.0, le=1.0)
    """Share of requests written to the prediction log, chosen by a hash of the request id
    (so every replica keeps the same ones); 0 turns the log off."""

    log_flush_seconds: float = Field(default=1.0, gt=0.0)
    """How often logged predictions are written: a crash loses at most this much."""

    log_buffer_records: int = Field(default=100_000, ge=1)
    """Requests held in memory for the log; past this (database slow or down) new ones are
    dropped and counted, never waited for."""

    retention_days: float | None = Field(default=None, gt=0.0)
    """Predictions (and their feedback) older than this are deleted; None keeps them all."""

    monitor: bool = True
    """Run the monitor (drift and performance signals) inside ``mlcanary serve``. Turn it
    off on replicas when one ``mlcanary watch`` process watches their shared store."""

    monitor_seconds: float = Field(default=5.0, gt=0.0)
    """How often the monitor looks for closed windows in the prediction log."""

    window_rows: int = Field(default=1000, ge=10)
    """A drift window closes when it holds this many rows (of one version and variant)."""

    window_seconds: float | None = Field(default=3600.0, gt=0.0)
    """...or when its first request is this old and it holds ``window_min_rows`` rows;
    None: count-based windows only."""

    window_min_rows: int = Field(default=200, ge=10)
    """The fewest rows a time-closed window is judged on; fewer wait for more."""

    monitor_max_windows: int = Field(default=10, ge=1)
    """Windows analysed per model, variant and version each tick. When more are waiting
    (traffic beyond what the monitor can read and test), the most recent are analysed and
    the older requests skipped, counted in the next signal: monitoring costs a bounded
    share of the machine however heavy the traffic."""

    admin_token: str | None = None
    """Bearer token of the ``/admin`` API (rollouts over HTTP); without it there is none."""

    inference_token: str | None = None
    """When set, inference and feedback routes require ``Authorization: Bearer <token>``."""

    policy_file: Path | None = None
    """TOML rules turning champion signals into alerts (see ``control/policies.py``)."""

    alert_url: str | None = None
    """Webhook that receives alerts as JSON (POST)."""

    alert_secret: str | None = None
    """HMAC-SHA256 key signing each alert (header ``X-Mlcanary-Signature``)."""

    drift_correction: Literal["bh", "bonferroni"] = "bh"
    """Multiple-testing correction across a window's column tests."""

    def __init__(self, **values: Any) -> None:
        """A bad value (flag, environment or ``mlcanary.toml``) is ``InvalidInput`` naming
        the setting, what it expects and what came (the CLI's exit 2), not pydantic's report."""
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise InvalidInput(_one_line(exc)) from None

    @field_validator("admin_token", "inference_token", "alert_secret")
    @classmethod
    def _not_empty(cls, value: str | None) -> str | None:
        # An empty secret (one that did not render in a manifest) must not become an empty
        # password that every "Bearer " header matches.
        if value is not None and not value.strip():
            raise ValueError("a non-empty secret (leave it unset to turn it off)")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    @property
    def registry_uri(self) -> str:
        """The MLflow URI every registry call uses."""
        if self.tracking_uri:
            return self.tracking_uri
        return f"sqlite:///{(self.home / 'mlflow.db').resolve()}"

    @property
    def store_uri(self) -> str:
        """The SQLAlchemy URL of the store (prediction log, feedback)."""
        if self.store_url:
            return self.store_url
        return f"sqlite:///{(self.home / 'store.db').resolve()}"

    @property
    def artifact_root(self) -> Path:
        return (self.home / "artifacts").resolve()

    @property
    def reports_dir(self) -> Path:
        return (self.home / "reports").resolve()


_BOUNDS = {"greater_than_equal": ("ge", ">="), "greater_than": ("gt", ">"),
           "less_than_equal": ("le", "<="), "less_than": ("lt", "<")}
_KINDS = {"int_parsing": "an integer", "int_from_float": "an integer",
          "float_parsing": "a number", "bool_parsing": "true or false"}


def _one_line(exc: ValidationError) -> str:
    """``setting MLCANARY_MAX_BATCH_SIZE (max_batch_size in mlcanary.toml): expected an
    integer; got 'abc'``: one clause per bad setting."""
    lines = []
    for err in exc.errors():
        field = str(err["loc"][0]) if err["loc"] else ""
        kind, ctx = err["type"], err.get("ctx", {})
        if kind in _BOUNDS:
            key, sign = _BOUNDS[kind]
            expected = f"a number {sign} {ctx[key]}"
        elif kind in _KINDS:
            expected = _KINDS[kind]
        else:
            expected = str(err["msg"]).removeprefix("Value error, ").removeprefix(
                "expected ").removeprefix("Input should be ")
        lines.append(f"setting MLCANARY_{field.upper()} ({field} in mlcanary.toml): "
                     f"expected {expected}; got {err.get('input')!r}")
    return "; ".join(lines)
