"""The store's tables as of mlcanary's first schema (every store created before migrations).

Revision ID: 0001
Revises:
Created: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "predictions",
        sa.Column("id", sa.Text, primary_key=True,
                  comment="request id (V2 'id', V1 X-Request-Id)"),
        sa.Column("ts", sa.Double, nullable=False,
                  comment='answered at, epoch seconds'),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("variant", sa.Text, nullable=False, server_default="champion"),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("inputs", sa.Text, nullable=False,
                  comment='JSON {column: [values...]}, as validated'),
        sa.Column("outputs", sa.Text, nullable=False,
                  comment='JSON {"predict": [...], "probabilities": [[...]], "classes": [...]}'),
        sa.Column("latency_ms", sa.Double, nullable=False),
    )
    op.create_index("predictions_model_ts", "predictions", ["model", "ts"])
    op.create_index("predictions_ts", "predictions", ["ts"])
    op.create_table(
        "feedback",
        sa.Column("id", sa.Text, primary_key=True,
                  comment="the prediction's id"),
        sa.Column("ts", sa.Double, nullable=False,
                  comment='labelled at, epoch seconds'),
        sa.Column("labels", sa.Text, nullable=False,
                  comment='JSON list, one label per predicted row'),
    )
    op.create_table(
        "signals",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("variant", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("kind", sa.Text, nullable=False,
                  comment='drift | performance'),
        sa.Column("start_ts", sa.Double, nullable=False,
                  comment='first request of the window'),
        sa.Column("end_ts", sa.Double, nullable=False,
                  comment='last request of the window'),
        sa.Column("last_id", sa.Text, nullable=False,
                  comment="last request id (the window's cursor)"),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("created", sa.Double, nullable=False),
        sa.Column("flagged", sa.Integer, nullable=False,
                  comment='1: dataset drift / degraded'),
        sa.Column("payload", sa.Text, nullable=False,
                  comment='JSON: the tests or the metric'),
    )
    op.create_index("signals_model_id", "signals", ["model", "id"])
    op.create_index("signals_window", "signals",
                    ["model", "variant", "version", "kind", "last_id"], unique=True)
    op.create_table(
        "deployments",
        sa.Column("model", sa.Text, primary_key=True),
        sa.Column("revision", sa.Integer, nullable=False,
                  comment='bumped by every change (optimistic lock)'),
        sa.Column("updated", sa.Double, nullable=False),
        sa.Column("state", sa.Text, nullable=False,
                  comment='JSON: control.deployments.Deployment'),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("ts", sa.Double, nullable=False),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False,
                  comment='deploy, step, promote, rollback, pause, ...'),
        sa.Column("actor", sa.Text, nullable=False,
                  comment="'user:<name>' or 'policy:<rule>'"),
        sa.Column("cause", sa.Text, nullable=False,
                  comment='JSON: the signal and its numbers'),
        sa.Column("before", sa.Text, nullable=False,
                  comment='JSON: state before'),
        sa.Column("after", sa.Text, nullable=False,
                  comment='JSON: state after'),
    )
    op.create_index("events_model_id", "events", ["model", "id"])
    op.create_table(
        "traffic",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("ts", sa.Double, nullable=False,
                  comment='end of the counting period'),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("variant", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("requests", sa.Integer, nullable=False),
        sa.Column("errors", sa.Integer, nullable=False,
                  comment='answered 5xx'),
        sa.Column("epoch", sa.Integer, nullable=False,
                  comment='rollout epoch routed by; 0: none'),
        sa.Column("latency", sa.Text, nullable=False,
                  comment='JSON: counts per LATENCY_EDGES_MS bucket'),
    )
    op.create_index("traffic_model_ts", "traffic", ["model", "ts"])
    op.create_table(
        "policy_firings",
        sa.Column("model", sa.Text, primary_key=True),
        sa.Column("policy", sa.Text, primary_key=True),
        sa.Column("fired", sa.Double, nullable=False,
                  comment='when the policy last acted, epoch seconds'),
        sa.Column("signal", sa.Integer, nullable=False,
                  comment='newest signal id it acted on'),
    )
    op.create_table(
        "log_stats",
        sa.Column("process", sa.Text, primary_key=True,
                  comment='host:pid:start of a serving process'),
        sa.Column("model", sa.Text, primary_key=True),
        sa.Column("ts", sa.Double, nullable=False),
        sa.Column("written", sa.Integer, nullable=False,
                  comment='predictions logged by that process'),
        sa.Column("dropped", sa.Integer, nullable=False,
                  comment='predictions it could not log'),
    )


def downgrade() -> None:
    for table in ("log_stats", "policy_firings", "traffic", "events", "deployments",
                  "signals", "feedback", "predictions"):
        op.drop_table(table)
