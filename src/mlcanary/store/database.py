"""The store: the prediction log and its feedback, on SQLite or Postgres through one code path.

SQLite (the default, ``store.db`` under the home directory) runs in WAL mode with
``synchronous=NORMAL``: a committed batch survives the process being killed, readers
never block the writer, and several server processes can share the file (writers wait
for each other up to the busy timeout). Write transactions start with ``BEGIN
IMMEDIATE`` so two writers queue at the start instead of failing on a lock upgrade.
Postgres (``MLCANARY_STORE_URL=postgresql://...``) goes through psycopg 3.

The constructor only describes the database; ``open`` migrates its schema (alembic,
``store/migrations``) to the newest revision, and every
method opens the store on first use, so a server starts even while its database is
down and its tap keeps retrying.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
from sqlalchemy import Connection, Engine, create_engine, delete, event, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from mlcanary.config import Settings
from mlcanary.errors import InvalidInput, Unavailable
from mlcanary.store.feedback import FeedbackItem, FeedbackResult, check_labels
from mlcanary.store.records import PredictionRecord, encode, outputs_of, window_frame
from mlcanary.store.schema import feedback, migrate, predictions

CHUNK = 500
"""Ids per ``IN (...)`` query: far below SQLite's and Postgres's parameter limits."""


def normalise_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` mean psycopg 3 (SQLAlchemy would pick psycopg2)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


class Store:
    """The prediction log and feedback (later also signals and events) in one database.

    >>> store = Store("sqlite:///tmp/store.db").open()  # doctest: +SKIP
    >>> store.add_feedback("churn", [("3f2a...", 1)])  # doctest: +SKIP
    FeedbackResult(matched=1, unknown=[], changed=0, unchanged=0)
    """

    def __init__(self, url: str, *, busy_timeout_ms: int = 5000) -> None:
        self.url = normalise_url(url)
        self.busy_timeout_ms = busy_timeout_ms
        try:
            self.engine = _engine(self.url, busy_timeout_ms)
        except (ArgumentError, NoSuchModuleError, ImportError) as exc:
            raise InvalidInput(
                f"store URL '{_hidden(url)}': cannot be opened ({exc}); expected "
                f"postgresql://USER@HOST/DATABASE or sqlite:///PATH"
            ) from exc
        self._opened = False
        self._append_sql: tuple[str, Sequence[str] | None] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Store:
        return cls(settings.store_uri)

    @property
    def where(self) -> str:
        """The URL without its password, for messages."""
        return self.engine.url.render_as_string(hide_password=True)

    def open(self) -> Store:
        """Migrate the schema to the newest revision (a no-op read when it is there;
        safe from several processes at once)."""
        database = self.engine.url.database
        if self.engine.dialect.name == "sqlite" and database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        with self._reachable():
            migrate(self.engine)
        self._opened = True
        return self

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write_predictions(self, records: Sequence[PredictionRecord]) -> None:
        """Append ``records`` in one transaction (one executemany).

        An id already in the log keeps its first prediction (a client that reuses a
        request id must not rewrite history that feedback may already be joined to).
        """
        if not records:
            return
        rows = encode(records)
        with self._write() as conn:
            if self._append_sql is None:
                compiled = self._insert(predictions).on_conflict_do_nothing().compile(conn)
                self._append_sql = (str(compiled), compiled.positiontup)
            # The statement's own SQL, run by the driver: SQLAlchemy's per-row parameter
            # processing was a quarter of the log's writing cost, for nothing to convert.
            sql, order = self._append_sql
            if order is not None:  # SQLite's ? placeholders take tuples
                conn.exec_driver_sql(sql, [tuple(row[k] for k in order) for row in rows])
            else:
                conn.exec_driver_sql(sql, rows)

    def add_feedback(
        self, model: str, items: Iterable[FeedbackItem | tuple[str, Any]]
    ) -> FeedbackResult:
        """Join labels to ``model``'s logged predictions by id; all or nothing.

        Every label is checked against the prediction it names (row count, classes)
        before anything is written, so a bad batch leaves the store as it was.
        Re-sending a label changes nothing; a different label replaces the old one.
        """
        batch = [_item(item) for item in items]
        seen: set[str] = set()
        for item in batch:
            if item.id in seen:
                raise InvalidInput(f"feedback id '{item.id}': given twice; expected each id once")
            seen.add(item.id)
        with self._write() as conn:
            known = self._predicted(conn, model, [item.id for item in batch])
            labels = {
                item.id: check_labels(item, *known[item.id]) for item in batch if item.id in known
            }
            stored = self._labels(conn, list(labels))
            changed = [i for i in labels if i in stored and stored[i] != labels[i]]
            fresh = [i for i in labels if i not in stored or stored[i] != labels[i]]
            if fresh:
                now = time.time()
                rows = [
                    {"id": i, "ts": now, "labels": orjson.dumps(labels[i]).decode()} for i in fresh
                ]
                insert = self._insert(feedback)
                upsert = insert.on_conflict_do_update(
                    index_elements=[feedback.c.id],
                    set_={"ts": insert.excluded.ts, "labels": insert.excluded.labels},
                )
                conn.execute(upsert, rows)
        return FeedbackResult(
            matched=len(labels),
            unknown=[item.id for item in batch if item.id not in known],
            changed=len(changed),
            unchanged=len(labels) - len(fresh),
        )

    def read_window(
        self,
        model: str,
        *,
        variant: str | None = None,
        version: int | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int | None = None,
        inputs: bool = True,
        labelled: bool = False,
    ) -> pd.DataFrame:
        """One row per predicted row of ``model`` in ``[since, until)``, oldest first.

        ``limit`` keeps the most recent ``limit`` predictions (requests, not rows).
        ``inputs=False`` leaves the request's columns out (neither read nor decoded: the
        outputs and labels alone); ``labelled=True`` keeps only predictions with labels.
        Columns are described in ``records.window_frame``.
        """
        wanted = [predictions.c.id, predictions.c.ts, predictions.c.variant,
                  predictions.c.version, predictions.c.rows, predictions.c.outputs,
                  feedback.c.labels]
        if inputs:
            wanted.append(predictions.c.inputs)
        joined = (predictions.join(feedback, feedback.c.id == predictions.c.id) if labelled
                  else predictions.outerjoin(feedback, feedback.c.id == predictions.c.id))
        query = select(*wanted).select_from(joined).where(predictions.c.model == model)
        if variant is not None:
            query = query.where(predictions.c.variant == variant)
        if version is not None:
            query = query.where(predictions.c.version == version)
        if since is not None:
            query = query.where(predictions.c.ts >= since)
        if until is not None:
            query = query.where(predictions.c.ts < until)
        if limit is None:
            query = query.order_by(predictions.c.ts, predictions.c.id)
        else:
            query = query.order_by(predictions.c.ts.desc(), predictions.c.id.desc()).limit(limit)
        with self._read() as conn:
            rows = list(conn.execute(query).mappings())
        if limit is not None:
            rows.reverse()
        return window_frame(rows)

    def label_marks(self, model: str, *, limit: int) -> dict[tuple[str, int], str]:
        """Per (variant, version): a digest of the labelled predictions among ``model``'s
        ``limit`` most recent (ids and labels), read without the records. It changes when a
        label arrives or changes, or a labelled prediction leaves the recent ones."""
        query = (
            select(predictions.c.id, predictions.c.variant, predictions.c.version,
                   feedback.c.labels)
            .select_from(predictions.outerjoin(feedback, feedback.c.id == predictions.c.id))
            .where(predictions.c.model == model)
            .order_by(predictions.c.ts.desc(), predictions.c.id.desc())
            .limit(limit)
        )
        digests: dict[tuple[str, int], Any] = {}
        with self._read() as conn:
            for key, variant, version, labels in conn.execute(query):
                if labels is not None:
                    digest = digests.setdefault((variant, int(version)), hashlib.sha256())
                    digest.update(f"{key}\x1f{labels}\x1e".encode())
        return {group: digest.hexdigest()[:32] for group, digest in digests.items()}

    def count(self, model: str) -> int:
        """Predictions (requests) logged for ``model``."""
        query = select(func.count()).select_from(predictions).where(predictions.c.model == model)
        with self._read() as conn:
            return int(conn.execute(query).scalar_one())

    def groups(
        self, model: str, *, since: float | None = None, until: float | None = None
    ) -> dict[tuple[str, int], int]:
        """Requests of ``model`` in ``[since, until)`` per (variant, version)."""
        query = select(predictions.c.variant, predictions.c.version, func.count()).where(
            predictions.c.model == model
        )
        if since is not None:
            query = query.where(predictions.c.ts >= since)
        if until is not None:
            query = query.where(predictions.c.ts < until)
        query = query.group_by(predictions.c.variant, predictions.c.version)
        with self._read() as conn:
            return {(str(v), int(n)): int(c) for v, n, c in conn.execute(query)}

    def count_after(
        self, model: str, variant: str, version: int, after_ts: float, until: float
    ) -> int:
        """Requests of one group with ``after_ts < ts < until``."""
        query = select(func.count()).select_from(predictions).where(
            predictions.c.model == model, predictions.c.variant == variant,
            predictions.c.version == version, predictions.c.ts > after_ts,
            predictions.c.ts < until,
        )
        with self._read() as conn:
            return int(conn.execute(query).scalar_one())

    def purge(self, older_than_seconds: float) -> int:
        """Delete predictions older than this, with their feedback; returns how many."""
        cutoff = time.time() - older_than_seconds
        old = select(predictions.c.id).where(predictions.c.ts < cutoff)
        with self._write() as conn:
            conn.execute(delete(feedback).where(feedback.c.id.in_(old)))
            deleted = conn.execute(delete(predictions).where(predictions.c.ts < cutoff))
        return int(deleted.rowcount)

    def _predicted(
        self, conn: Connection, model: str, ids: list[str]
    ) -> dict[str, tuple[int, list[Any] | None]]:
        """id -> (rows, classes) for the ids that name a prediction of ``model``."""
        found = {}
        for start in range(0, len(ids), CHUNK):
            query = select(predictions.c.id, predictions.c.rows, predictions.c.outputs).where(
                predictions.c.model == model, predictions.c.id.in_(ids[start : start + CHUNK])
            )
            for id_, rows, outputs in conn.execute(query):
                found[id_] = (int(rows), outputs_of(outputs).get("classes"))
        return found

    def _labels(self, conn: Connection, ids: list[str]) -> dict[str, list[Any]]:
        stored = {}
        for start in range(0, len(ids), CHUNK):
            query = select(feedback.c.id, feedback.c.labels).where(
                feedback.c.id.in_(ids[start : start + CHUNK])
            )
            for id_, labels in conn.execute(query):
                stored[id_] = orjson.loads(labels)
        return stored

    def _insert(self, table: Any) -> Any:
        """The dialect's INSERT, which knows ON CONFLICT (both spell it the same way)."""
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        return dialect.insert(table)

    @contextlib.contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._reachable():
            self._ensure_open()
            with self.engine.connect() as conn:
                conn.execution_options(mlcanary_immediate=True)
                with conn.begin():
                    yield conn

    @contextlib.contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._reachable():
            self._ensure_open()
            with self.engine.connect() as conn, conn.begin():
                yield conn

    def _ensure_open(self) -> None:
        if not self._opened:
            self.open()

    @contextlib.contextmanager
    def _reachable(self) -> Iterator[None]:
        """Database errors become ``Unavailable`` (503 over HTTP): the client may retry."""
        try:
            yield
        except DBAPIError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
            raise Unavailable(f"store '{self.where}': unavailable ({reason})") from exc


def _hidden(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url if "@" not in url else "(not shown: it may hold a password)"


def _item(item: FeedbackItem | tuple[str, Any]) -> FeedbackItem:
    if isinstance(item, FeedbackItem):
        return item
    id_, label = item
    return FeedbackItem(str(id_), list(label) if isinstance(label, list | tuple) else [label])


def _engine(url: str, busy_timeout_ms: int) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
        # A database that does not answer must not hold the tap's writer (or a shutdown)
        # for the operating system's TCP timeout.
        url = parsed.update_query_dict({"connect_timeout": "5"}).render_as_string(False)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    engine = create_engine(url, connect_args={"timeout": busy_timeout_ms / 1000})

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, record: Any) -> None:
        # SQLAlchemy emits BEGIN itself (below); sqlite3's own transaction handling
        # would defer it and turn a writer's lock upgrade into an immediate failure.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        # A client's own request ids may be random, so their inserts land on random pages
        # of the id index (the server's own are time-ordered: ``new_request_id``); a 64
        # MiB page cache (default 2 MiB) keeps that index in memory far longer.
        cursor.execute("PRAGMA cache_size=-65536")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get("mlcanary_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine
