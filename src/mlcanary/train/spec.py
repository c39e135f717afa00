"""The training spec: what to fit, validated once at the edge."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mlcanary.errors import InvalidInput
from mlcanary.types import MODEL_FAMILIES, TASKS, ModelFamily, Task

_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


class TrainSpec(BaseModel):
    """Everything ``mlcanary train`` needs; built from CLI flags or a TOML table."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data: Path
    target: str
    name: str | None = None
    task: Task | None = None
    time_column: str | None = None
    group_column: str | None = None
    model: ModelFamily = "lightgbm"
    folds: int = Field(default=5, ge=2, le=20)
    trials: int = Field(default=0, ge=0, le=1000)
    min_precision: float | None = Field(default=None, gt=0.0, le=1.0)
    min_recall: float | None = Field(default=None, gt=0.0, le=1.0)
    promote: bool = False
    seed: int = 0
    reference_last: int | None = Field(default=None, ge=1)
    """Draw the drift reference from the last N rows only (after time ordering): the
    recent production rows a retrain adds, rather than the data they replaced."""
    id_columns: tuple[str, ...] = ()
    """Identifiers whatever their values look like: left out of the model, still accepted
    and profiled. A retrain passes the champion's, so that an ID column repeated across
    the log's rows does not become a category the new version would refuse new IDs of."""

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str | None) -> str | None:
        if value is not None and (not value or set(value) - _NAME_CHARS):
            raise ValueError("expected letters, digits, '-', '_' or '.'")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> TrainSpec:
        if self.min_precision is not None and self.min_recall is not None:
            raise ValueError("give --min-precision or --min-recall, not both")
        if self.time_column and self.group_column:
            raise ValueError("give --time-column or --group-column, not both")
        if self.time_column is not None and self.time_column == self.target:
            raise ValueError("--time-column must differ from --target")
        if self.target in self.id_columns:
            raise ValueError("--id-column must differ from --target")
        return self

    @property
    def model_name(self) -> str:
        """The registry name: ``--name`` or the file's stem."""
        if self.name:
            return self.name
        stem = "".join(ch if ch in _NAME_CHARS else "-" for ch in self.data.stem)
        return stem or "model"

    @classmethod
    def parse(cls, **options: object) -> TrainSpec:
        """Build a spec, turning pydantic's report into one line naming the option."""
        try:
            return cls.model_validate(options)
        except ValidationError as exc:
            raise InvalidInput(_one_line(exc)) from exc


_CHOICES = {"model": MODEL_FAMILIES, "task": TASKS}


def _one_line(exc: ValidationError) -> str:
    err = exc.errors()[0]
    field = str(err["loc"][0]) if err["loc"] else ""
    flag = "--" + field.replace("_", "-") if field else "options"
    received = err.get("input")
    if field in _CHOICES:
        allowed = ", ".join(_CHOICES[field])
        return f"{flag}: expected one of {allowed}; got {received!r}"
    message = str(err["msg"]).removeprefix("Value error, ")
    if not field:
        return message
    return f"{flag}: {message}; got {received!r}"
