"""Predictions keep their arrays as binary records, not JSON text.

JSON of 64 rows of 30 numbers is 40 KB and most of the log's CPU; the binary record
(``records.pack``) is 16 KB and a block copy. Rows already logged keep their JSON, which
the readers still take (Postgres converts the text to its UTF-8 bytes; SQLite keeps each
value as it was stored).

Revision ID: 0002
Revises: 0001
Created: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COMMENTS = {
    "inputs": ("the columns as validated: a binary record (records.pack), or older JSON",
               "JSON {column: [values...]}, as validated"),
    "outputs": ("predict, probabilities and classes: a binary record, or older JSON",
                'JSON {"predict": [...], "probabilities": [[...]], "classes": [...]}'),
}


def upgrade() -> None:
    bind = op.get_bind()
    types = {c["name"]: c["type"] for c in sa.inspect(bind).get_columns("predictions")}
    if all(isinstance(types[name], sa.LargeBinary) for name in COMMENTS):
        return  # binary already (tables made by this schema, then their version lost)
    if bind.dialect.name == "postgresql":
        for column, (comment, before) in COMMENTS.items():
            op.alter_column("predictions", column, type_=sa.LargeBinary,
                            existing_type=sa.Text, existing_nullable=False, comment=comment,
                            existing_comment=before,
                            postgresql_using=f"convert_to({column}, 'UTF8')")
        return
    with op.batch_alter_table("predictions") as batch:  # SQLite: the table is rebuilt
        for column, (comment, before) in COMMENTS.items():
            batch.alter_column(column, type_=sa.LargeBinary, existing_type=sa.Text,
                               existing_nullable=False, comment=comment,
                               existing_comment=before)


def downgrade() -> None:
    raise NotImplementedError("binary records have no JSON text form to go back to")
