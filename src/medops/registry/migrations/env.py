"""Alembic's entry point: runs the migrations on the connection ``audit.migrate`` passes."""

from alembic import context

from medops.registry.audit import VERSION_TABLE

connection = context.config.attributes["connection"]
context.configure(connection=connection, version_table=VERSION_TABLE)
with context.begin_transaction():
    context.run_migrations()
