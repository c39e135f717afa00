"""The input signature: the contract between a model version and its clients.

It lists every column of the training table except the target, in file order, so that
clients send rows exactly as they appear in the file. Columns the model does not use
(constant, ID-like) stay with ``used=False``: they are still accepted and still
profiled, because a constant column that starts to vary is itself news.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from mlcanary.types import ColumnKind, Task, V2Datatype

if TYPE_CHECKING:
    from mlcanary.dates import DateCache

DATATYPE: dict[ColumnKind, V2Datatype] = {
    "numeric": "FP64",
    "integer": "INT64",
    "boolean": "BOOL",
    "categorical": "BYTES",
    "datetime": "BYTES",
}


@dataclass
class ColumnSpec:
    """One input column: how it is read, what it may hold, whether the model uses it."""

    name: str
    kind: ColumnKind
    nullable: bool
    used: bool = True
    note: str = ""
    categories: list[str] | None = None
    datetime_parts: list[str] = field(default_factory=list)

    @property
    def datatype(self) -> V2Datatype:
        return DATATYPE[self.kind]

    def category_set(self) -> frozenset[str]:
        """``categories`` as a set, built once per list (validation checks each request by
        it); a replaced or grown list is read again."""
        cached: tuple[list[str] | None, int, frozenset[str]] | None = getattr(
            self, "_category_set", None)
        categories = self.categories
        if cached is None or cached[0] is not categories or cached[1] != len(categories or ()):
            cached = (categories, len(categories or ()), frozenset(categories or ()))
            self._category_set = cached
        return cached[2]

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "datatype": self.datatype}


@dataclass
class Signature:
    """The contract between a model version and its clients."""

    columns: list[ColumnSpec]
    target: str
    task: Task
    classes: list[Any] | None = None
    _dates: DateCache | None = field(default=None, init=False, repr=False, compare=False)

    def date_cache(self) -> DateCache:
        """The date texts this version has read, parsed: its validation and its runtime
        share them (made on first use)."""
        if self._dates is None:
            from mlcanary.dates import DateCache

            self._dates = DateCache()
        return self._dates

    @property
    def used(self) -> list[ColumnSpec]:
        return [c for c in self.columns if c.used]

    def names(self, kind: ColumnKind | None = None, used_only: bool = True) -> list[str]:
        pool = self.used if used_only else self.columns
        return [c.name for c in pool if kind is None or c.kind == kind]

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "task": self.task,
            "classes": self.classes,
            "columns": [c.as_dict() for c in self.columns],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Signature:
        columns = [
            ColumnSpec(**{k: v for k, v in c.items() if k != "datatype"}) for c in data["columns"]
        ]
        return cls(columns, data["target"], data["task"], data.get("classes"))
