"""``feature_store.yaml`` from the recipe's ``features:`` section.

Everything is an absolute path, as the duckdb offline store resolves relative parquet
paths against the current directory, not the repository. No secret is ever written: with
``REDIS_PASSWORD`` set, the file holds the placeholder ``${REDIS_PASSWORD}``, which Feast
substitutes from the environment when it reads the file (as the Helm chart's Feast does).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from medops.features.spec import FEATURE_STORE_YAML
from medops.recipe import Features

REDIS_PASSWORD_ENV = "REDIS_PASSWORD"  # noqa: S105 (the variable's name, no secret)
# set on a cluster (the Helm chart's Feast): the feature_store.yaml every medops pod opens
# its store with instead of the repository's own, so registry and online store are the
# platform's; the spec and the offline parquet stay where the build wrote them
CLUSTER_CONFIG_ENV = "MEDOPS_FEATURE_STORE_CONFIG"
REGISTRY_FILE = "registry.db"
ONLINE_FILE = "online.db"


def registry_config(features: Features, directory: Path) -> Any:
    """A registry file in the repository, or Feast's SQL registry on PostgreSQL (its
    password, if any, from ``PGPASSWORD``, which libpq reads)."""
    if features.registry is None:
        return str(directory / REGISTRY_FILE)
    rest = features.registry.partition("://")[2]
    return {
        "registry_type": "sql",
        "path": f"postgresql+psycopg://{rest}",
        "cache_ttl_seconds": 60,
    }


def online_config(features: Features, directory: Path) -> dict[str, Any]:
    store = features.online_store
    if store.type == "sqlite":
        return {"type": "sqlite", "path": str(directory / ONLINE_FILE)}
    connection = store.connection_string or ""
    if os.environ.get(REDIS_PASSWORD_ENV):
        connection += f",password=${{{REDIS_PASSWORD_ENV}}}"
    return {"type": "redis", "connection_string": connection}


def write_config(features: Features, project: str, directory: Path) -> Path:
    """Write ``feature_store.yaml`` into ``directory`` (absolute) and return its path."""
    config = {
        "project": project,
        "provider": "local",
        "registry": registry_config(features, directory),
        "offline_store": {"type": "duckdb"},
        "online_store": online_config(features, directory),
        "entity_key_serialization_version": 3,
    }
    path = directory / FEATURE_STORE_YAML
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
