"""Feedback: true labels that arrive after the prediction, joined to it by request id.

Two doors lead here, the HTTP endpoint (a JSON list) and ``mlcanary feedback`` (a file);
both become the same ``FeedbackItem`` list and go through ``Store.add_feedback``, which
checks each label against the prediction it names (``check_labels``).

A label is one value for a one-row request, or a list with one value per row. For a
classifier it must be one of the classes the answering version was trained on (text
that spells a class, like ``"1"`` for ``1``, is taken as that class and stored as the
class itself); for a regressor, a finite number.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pydantic import field_validator

from mlcanary.bodies import Body, Field, checked, json_type
from mlcanary.errors import InvalidInput

Label = str | int | float | bool | None
"""One label as JSON carries it; ``check_labels`` holds it against the model's classes."""

_EXPECTED_ITEM = 'an object {"id": "...", "label": ...}'


@dataclass(frozen=True)
class FeedbackItem:
    """The labels for one prediction, one per predicted row."""

    id: str
    labels: list[Any]


@dataclass(frozen=True)
class FeedbackResult:
    """What one batch of feedback did.

    ``matched`` ids name a logged prediction of the model; of those, ``changed`` replaced
    a different earlier label, ``unchanged`` repeated the stored one, and the rest
    (``new``) were labelled for the first time. ``unknown`` ids were ignored: no
    prediction of this model has that id (or the id was purged).
    """

    matched: int
    unknown: list[str]
    changed: int
    unchanged: int

    @property
    def new(self) -> int:
        return self.matched - self.changed - self.unchanged

    def as_dict(self) -> dict[str, Any]:
        return {
            "matched": self.matched,
            "new": self.new,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "unknown": self.unknown,
        }


class FeedbackBody(Body):
    """One item of the feedback endpoint's body."""

    id: str = Field(min_length=1, description="the prediction's id as a non-empty string")
    label: Label | list[Label] = Field(
        description="one value, or a non-empty list with one value per row of the prediction"
    )

    @field_validator("label")
    @classmethod
    def _some_label(cls, label: Label | list[Label]) -> Label | list[Label]:
        if isinstance(label, list) and not label:
            raise ValueError("expected one value, or a non-empty list with one value per "
                             "row of the prediction, got []")
        return label


def parse_feedback(document: object) -> list[FeedbackItem]:
    """Items from the endpoint's body: ``[{"id": "...", "label": ...}, ...]``."""
    if not isinstance(document, list):
        raise InvalidInput(
            f"feedback: expected a JSON list of {_EXPECTED_ITEM} items, got {json_type(document)}"
        )
    items = []
    for i, entry in enumerate(document):
        where = f"feedback item {i}"
        if isinstance(entry, dict) and isinstance(entry.get("id"), str) and entry["id"]:
            where += f" (id '{entry['id']}')"
        body = checked(FeedbackBody, entry, where)
        labels = body.label if isinstance(body.label, list) else [body.label]
        items.append(FeedbackItem(body.id, list(labels)))
    _check_unique([item.id for item in items], "feedback items")
    return items


def items_from_frame(frame: pd.DataFrame, source: str) -> list[FeedbackItem]:
    """Items from a table with columns ``id``, ``label`` and, optionally, ``row``.

    Without ``row`` each id appears once and labels a one-row prediction. With it, the
    rows of one id (numbered 0, 1, ... in the prediction's row order) give its labels.
    """
    missing = [c for c in ("id", "label") if c not in frame.columns]
    if missing:
        raise InvalidInput(
            f"{source}: missing column(s) {missing}; expected columns id and label "
            f"(and row, for multi-row predictions), got {list(frame.columns)}"
        )
    for column in ("id", "label"):
        absent = frame[column].isna()
        if absent.any():
            record = int(absent.to_numpy().argmax())
            raise InvalidInput(
                f"{source} record {record + 1}: missing '{column}' "
                f"({int(absent.sum())} record(s) in all); expected a value in every record"
            )
    ids = [str(v) for v in frame["id"].tolist()]
    labels = frame["label"].tolist()
    if "row" not in frame.columns:
        hint = "; add a 'row' column to label several rows of one prediction"
        _check_unique(ids, f"{source} records", hint, first=1)
        return [FeedbackItem(i, [label]) for i, label in zip(ids, labels, strict=True)]
    rows = pd.to_numeric(frame["row"], errors="coerce")
    bad = rows.isna() | (rows < 0) | (rows != rows.round())
    if bad.any():
        record = int(bad.to_numpy().argmax())
        raise InvalidInput(
            f"{source} record {record + 1} 'row': expected a row number 0, 1, ..., "
            f"got {frame['row'].tolist()[record]!r}"
        )
    grouped: dict[str, dict[int, Any]] = {}
    for i, (id_, row, label) in enumerate(zip(ids, rows.astype(int).tolist(), labels, strict=True)):
        by_row = grouped.setdefault(id_, {})
        if row in by_row:
            raise InvalidInput(f"{source} record {i + 1}: id '{id_}' row {row} is labelled twice")
        by_row[row] = label
    items = []
    for id_, by_row in grouped.items():
        if sorted(by_row) != list(range(len(by_row))):
            raise InvalidInput(
                f"{source}: id '{id_}' has rows {sorted(by_row)}; expected rows 0 to "
                f"{len(by_row) - 1}, each once"
            )
        items.append(FeedbackItem(id_, [by_row[r] for r in range(len(by_row))]))
    return items


def check_labels(item: FeedbackItem, rows: int, classes: Sequence[Any] | None) -> list[Any]:
    """The item's labels as stored: one per row, each a class (or a float for regression)."""
    where = f"feedback id '{item.id}'"
    if len(item.labels) != rows:
        raise InvalidInput(
            f"{where}: expected {rows} label(s), one per row of the prediction, "
            f"got {len(item.labels)}"
        )
    if classes is None:
        return [_number(label, where, k, rows) for k, label in enumerate(item.labels)]
    lookup = _class_lookup(classes)
    out = []
    for k, label in enumerate(item.labels):
        known = lookup.get(label) if _hashable(label) else None
        if known is None and _hashable(label):
            known = lookup.get(str(label))
        if known is None:
            at = f" at row {k}" if rows > 1 else ""
            raise InvalidInput(
                f"{where}: label {_shown(label)}{at} is not a class of this model; "
                f"expected one of {list(classes)}"
            )
        out.append(known[0])
    return out


def _class_lookup(classes: Sequence[Any]) -> dict[Any, tuple[Any]]:
    """Label -> (class,), accepting the class itself and its spelling as text."""
    lookup: dict[Any, tuple[Any]] = {}
    for value in classes:
        lookup.setdefault(value, (value,))
        lookup.setdefault(str(value), (value,))
        if isinstance(value, bool):
            lookup.setdefault(str(value).lower(), (value,))
    return lookup


def _number(label: Any, where: str, k: int, rows: int) -> float:
    real = isinstance(label, numbers.Real) and not isinstance(label, bool | np.bool_)
    if not real or not math.isfinite(label):
        at = f" at row {k}" if rows > 1 else ""
        raise InvalidInput(
            f"{where}: label {_shown(label)}{at} is not a number; expected a finite number "
            f"(this model is a regressor)"
        )
    return float(label)


def _shown(value: Any) -> str:
    return repr(value.item() if isinstance(value, np.generic) else value)


def _hashable(value: Any) -> bool:
    return isinstance(value, str | numbers.Number) and value == value  # NaN: never a class


def _check_unique(ids: list[str], where: str, hint: str = "", first: int = 0) -> None:
    seen: dict[str, int] = {}
    for i, id_ in enumerate(ids, start=first):
        if id_ in seen:
            raise InvalidInput(
                f"{where} {seen[id_]} and {i}: the same id '{id_}'; expected each id once{hint}"
            )
        seen[id_] = i

