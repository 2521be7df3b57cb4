"""Alembic upgrades for medops' own stores (the feedback store, the audit log): one way to
bring a database to its latest schema, whichever package holds the migrations."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine


def migrate(engine: Engine, migrations: Path) -> None:
    """Upgrade ``engine``'s database to the head of ``migrations`` (a new one is created)."""
    config = Config()
    config.set_main_option("script_location", str(migrations))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
