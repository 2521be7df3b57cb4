"""Alembic's entry point: runs the migrations on the connection ``store.migrate`` passes."""

from alembic import context

from medops.review.store import VERSION_TABLE

connection = context.config.attributes["connection"]
context.configure(connection=connection, version_table=VERSION_TABLE)
with context.begin_transaction():
    context.run_migrations()
