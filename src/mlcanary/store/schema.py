"""The store's tables, declared once for SQLite and Postgres alike.

Changing them is a migration (alembic, ``store/migrations/versions``): change the
``Table`` here, add a revision that makes the same change (``op.add_column``, ...), and
set ``HEAD`` to it; ``migrate`` brings every store to ``HEAD`` on its next open.
JSON travels as text: the same bytes on both databases, and nothing the store queries by.
A prediction's arrays travel as binary records (``records.pack``).
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import (
    Column,
    Connection,
    Double,
    Engine,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    inspect,
    text,
)

from mlcanary.errors import InvalidInput

metadata = MetaData()

INPUTS_COMMENT = "the columns as validated: a binary record (records.pack), or older JSON"
OUTPUTS_COMMENT = "predict, probabilities and classes: a binary record, or older JSON"

predictions = Table(
    "predictions",
    metadata,
    Column("id", Text, primary_key=True, comment="request id (V2 'id', V1 X-Request-Id)"),
    Column("ts", Double, nullable=False, comment="answered at, epoch seconds"),
    Column("model", Text, nullable=False),
    Column("variant", Text, nullable=False, server_default="champion"),
    Column("version", Integer, nullable=False),
    Column("rows", Integer, nullable=False),
    Column("inputs", LargeBinary, nullable=False, comment=INPUTS_COMMENT),
    Column("outputs", LargeBinary, nullable=False, comment=OUTPUTS_COMMENT),
    Column("latency_ms", Double, nullable=False),
    Index("predictions_model_ts", "model", "ts"),
    Index("predictions_ts", "ts"),
)

feedback = Table(
    "feedback",
    metadata,
    Column("id", Text, primary_key=True, comment="the prediction's id"),
    Column("ts", Double, nullable=False, comment="labelled at, epoch seconds"),
    Column("labels", Text, nullable=False, comment="JSON list, one label per predicted row"),
)

signals = Table(
    "signals",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model", Text, nullable=False),
    Column("variant", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("kind", Text, nullable=False, comment="drift | performance"),
    Column("start_ts", Double, nullable=False, comment="first request of the window"),
    Column("end_ts", Double, nullable=False, comment="last request of the window"),
    Column("last_id", Text, nullable=False, comment="last request id (the window's cursor)"),
    Column("rows", Integer, nullable=False),
    Column("created", Double, nullable=False),
    Column("flagged", Integer, nullable=False, comment="1: dataset drift / degraded"),
    Column("payload", Text, nullable=False, comment="JSON: the tests or the metric"),
    Index("signals_model_id", "model", "id"),
    # Two monitors on one store (a replica's and `mlcanary watch`) cannot record a
    # window twice: the second insert of the same window is a no-op.
    Index("signals_window", "model", "variant", "version", "kind", "last_id", unique=True),
)

deployments = Table(
    "deployments",
    metadata,
    Column("model", Text, primary_key=True),
    Column("revision", Integer, nullable=False, comment="bumped by every change (optimistic lock)"),
    Column("updated", Double, nullable=False),
    Column("state", Text, nullable=False, comment="JSON: control.deployments.Deployment"),
)

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", Double, nullable=False),
    Column("model", Text, nullable=False),
    Column("kind", Text, nullable=False, comment="deploy, step, promote, rollback, pause, ..."),
    Column("actor", Text, nullable=False, comment="'user:<name>' or 'policy:<rule>'"),
    Column("cause", Text, nullable=False, comment="JSON: the signal and its numbers"),
    Column("before", Text, nullable=False, comment="JSON: state before"),
    Column("after", Text, nullable=False, comment="JSON: state after"),
    Index("events_model_id", "model", "id"),
)

traffic = Table(
    "traffic",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", Double, nullable=False, comment="end of the counting period"),
    Column("model", Text, nullable=False),
    Column("variant", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("requests", Integer, nullable=False),
    Column("errors", Integer, nullable=False, comment="answered 5xx"),
    Column("epoch", Integer, nullable=False, comment="rollout epoch routed by; 0: none"),
    Column("latency", Text, nullable=False, comment="JSON: counts per LATENCY_EDGES_MS bucket"),
    Index("traffic_model_ts", "model", "ts"),
)

policy_firings = Table(
    "policy_firings",
    metadata,
    Column("model", Text, primary_key=True),
    Column("policy", Text, primary_key=True),
    Column("fired", Double, nullable=False, comment="when the policy last acted, epoch seconds"),
    Column("signal", Integer, nullable=False, comment="newest signal id it acted on"),
)
"""One row per policy: several watchers (replicas, ``--workers``) and restarts act on a
rule once per cooldown, and never twice on the same signals."""

log_stats = Table(
    "log_stats",
    metadata,
    Column("process", Text, primary_key=True, comment="host:pid:start of a serving process"),
    Column("model", Text, primary_key=True),
    Column("ts", Double, nullable=False),
    Column("written", Integer, nullable=False, comment="predictions logged by that process"),
    Column("dropped", Integer, nullable=False, comment="predictions it could not log"),
)

_SCHEMA_LOCK = 0x6D6C636E  # any constant: serialises migrations across Postgres clients

HEAD = "0002"
"""The newest revision in ``store/migrations/versions`` (a test checks it is alembic's head)."""
FIRST = "0001"
"""The revision a store created before migrations holds (its tables, no version)."""
MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version"


def revision(engine: Engine) -> str | None:
    """The store's schema revision; None before its first migration."""
    with engine.connect() as conn:
        return _revision(conn)


def migrate(engine: Engine) -> None:
    """Bring the store to ``HEAD``: one read when it is there already, else alembic's
    ``upgrade`` in one transaction, safe from several processes at once.

    SQLite serialises it by itself (writes begin ``IMMEDIATE``); on Postgres the migrator
    takes a transaction-scoped advisory lock first. A store made before migrations (its
    tables, no version) is stamped ``FIRST``, the revision that describes it, then upgraded.
    """
    if revision(engine) == HEAD:
        return
    with engine.connect() as conn:
        conn.execution_options(mlcanary_immediate=True)  # SQLite: BEGIN IMMEDIATE
        with conn.begin():
            _upgrade(conn)


def _upgrade(conn: Connection) -> None:
    from alembic import command
    from alembic.config import Config
    from alembic.util import CommandError

    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = conn
    found = _revision(conn)
    if found is None and inspect(conn).has_table("predictions"):
        command.stamp(config, FIRST)
    try:
        command.upgrade(config, "head")
    except CommandError as exc:  # a revision this version does not know: a newer one's
        raise InvalidInput(
            f"store schema revision {found!r} is not one this mlcanary knows (its newest "
            f"is {HEAD!r}): the store was migrated by a newer mlcanary; upgrade mlcanary"
        ) from exc


def _revision(conn: Connection) -> str | None:
    if not inspect(conn).has_table(VERSION_TABLE):
        return None
    found = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()
    return None if found is None else str(found)
