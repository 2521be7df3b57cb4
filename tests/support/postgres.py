"""Throw-away databases on the local PostgreSQL server (postgres@127.0.0.1:5432)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg


@contextmanager
def postgres_database(prefix: str = "medops_e2e") -> Iterator[str]:
    """A fresh database on the local server, dropped (connections and all) afterwards."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    admin = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
