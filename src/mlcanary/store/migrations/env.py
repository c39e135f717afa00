"""Alembic's environment for the store: migrations run on the connection ``store.migrate``
hands over (``config.attributes["connection"]``), inside its transaction and lock."""

from alembic import context

from mlcanary.store.schema import metadata

context.configure(
    connection=context.config.attributes["connection"],
    target_metadata=metadata,
    render_as_batch=True,  # SQLite alters a table by copying it
)
with context.begin_transaction():
    context.run_migrations()
