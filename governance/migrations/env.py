"""Alembic environment: the connection comes from governance.catalog.migrate()."""

from alembic import context

from governance.catalog_schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
