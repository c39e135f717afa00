"""Signals: one detector run on one window, kept in the store with what it rests on.

A drift signal holds every test of the window (statistic, p-value, effect size,
decision) and the dataset-level decision; a performance signal holds the window's metric,
its bootstrap interval and the version's baseline. Each row names its window by the
requests it covered (``start_ts`` .. ``end_ts``, cursor ``last_id``) and the model,
variant and version that served them, so ``status``, ``/monitor/{name}``, reports and the
control loop all read the same record.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
from sqlalchemy import and_, func, select

from mlcanary.store.database import Store
from mlcanary.store.schema import signals

Kind = Literal["drift", "performance"]


@dataclass(frozen=True)
class Signal:
    """One window's result, JSON-ready in ``payload``."""

    model: str
    variant: str
    version: int
    kind: Kind
    start_ts: float
    end_ts: float
    last_id: str
    rows: int
    flagged: bool
    payload: dict[str, Any]
    created: float = field(default_factory=time.time)
    id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model": self.model,
            "variant": self.variant,
            "version": self.version,
            "kind": self.kind,
            "window": {"start": self.start_ts, "end": self.end_ts, "rows": self.rows},
            "created": self.created,
            "flagged": self.flagged,
            **self.payload,
        }


class SignalLog:
    """Reads and writes ``signals`` rows through a ``Store``."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def add(self, signal: Signal) -> bool:
        """Record ``signal``; False when another monitor already recorded this window."""
        row = {
            "model": signal.model,
            "variant": signal.variant,
            "version": signal.version,
            "kind": signal.kind,
            "start_ts": signal.start_ts,
            "end_ts": signal.end_ts,
            "last_id": signal.last_id,
            "rows": signal.rows,
            "created": signal.created,
            "flagged": int(signal.flagged),
            "payload": orjson.dumps(signal.payload, option=orjson.OPT_SERIALIZE_NUMPY).decode(),
        }
        with self.store._write() as conn:
            insert = self.store._insert(signals).on_conflict_do_nothing()
            # RETURNING, not rowcount: psycopg reports -1 rows for a skipped conflict.
            return conn.execute(insert.returning(signals.c.id), row).first() is not None

    def latest(
        self, model: str, *, kind: Kind | None = None, last: int = 20
    ) -> list[Signal]:
        """The ``last`` most recent signals of ``model``, oldest first."""
        query = select(signals).where(signals.c.model == model)
        if kind is not None:
            query = query.where(signals.c.kind == kind)
        query = query.order_by(signals.c.id.desc()).limit(last)
        with self.store._read() as conn:
            rows = list(conn.execute(query).mappings())
        return [_signal(row) for row in reversed(rows)]

    def cursor(self, model: str, variant: str, version: int, kind: Kind) -> tuple[float, str]:
        """Where the last recorded window of this kind ended: (ts, id), or (-inf, '')."""
        query = (
            select(signals.c.end_ts, signals.c.last_id)
            .where(
                and_(
                    signals.c.model == model,
                    signals.c.variant == variant,
                    signals.c.version == version,
                    signals.c.kind == kind,
                )
            )
            .order_by(signals.c.end_ts.desc(), signals.c.id.desc())
            .limit(1)
        )
        with self.store._read() as conn:
            row = conn.execute(query).first()
        return (float(row[0]), str(row[1])) if row else (float("-inf"), "")

    def count(self, model: str) -> int:
        query = select(func.count()).select_from(signals).where(signals.c.model == model)
        with self.store._read() as conn:
            return int(conn.execute(query).scalar_one())


def _signal(row: Any) -> Signal:
    return Signal(
        model=row["model"],
        variant=row["variant"],
        version=int(row["version"]),
        kind=row["kind"],
        start_ts=float(row["start_ts"]),
        end_ts=float(row["end_ts"]),
        last_id=row["last_id"],
        rows=int(row["rows"]),
        flagged=bool(row["flagged"]),
        payload=orjson.loads(row["payload"]),
        created=float(row["created"]),
        id=int(row["id"]),
    )


def iter_tests(signal: Signal) -> Iterator[dict[str, Any]]:
    """A drift signal's tests, each ``{"feature", "test", "statistic", ...}``."""
    yield from signal.payload.get("tests", [])
