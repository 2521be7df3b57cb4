"""Open a generated feature repository with Feast.

``FeatureRepo`` is the handle every other module takes: the directory and its spec. It
opens Feast's ``FeatureStore`` from the generated ``feature_store.yaml`` (so what runs is
what the file says), after checking the one environment variable the file may need.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medops.features.config import REDIS_PASSWORD_ENV
from medops.features.errors import FeatureConfigError, FeatureStoreMissing
from medops.features.quiet import quiet
from medops.features.redis_store import redis_client
from medops.features.spec import FEATURE_STORE_YAML, RepoSpec, read_spec

DIRECTORY = "features"  # under a recipe's output_dir


@dataclass
class FeatureRepo:
    """A generated Feast repository: ``feature_store.yaml``, its spec, its parquet."""

    directory: Path
    spec: RepoSpec
    _store: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def open(cls, directory: Path) -> FeatureRepo:
        directory = Path(directory).resolve()
        if not (directory / FEATURE_STORE_YAML).is_file():
            raise FeatureStoreMissing(
                f"{directory} has no {FEATURE_STORE_YAML}: run the features build first"
            )
        return cls(directory, read_spec(directory))

    @property
    def store(self) -> Any:
        """Feast's ``FeatureStore`` for this repository, opened once."""
        if self._store is None:
            self._store = open_store(self.directory)
        return self._store

    def online_client(self) -> Any:
        """A Redis client for the online store, or None for SQLite (checks it answers)."""
        online = self.store.config.online_store
        if getattr(online, "type", "") != "redis":
            return None
        return redis_client(online.connection_string)


def open_store(directory: Path) -> Any:
    """``FeatureStore(repo_path=directory)``; Feast substitutes ``${REDIS_PASSWORD}``."""
    text = (directory / FEATURE_STORE_YAML).read_text(encoding="utf-8")
    if f"${{{REDIS_PASSWORD_ENV}}}" in text and not os.environ.get(REDIS_PASSWORD_ENV):
        raise FeatureConfigError(
            f"{REDIS_PASSWORD_ENV} is not set, and the feature store at {directory} was "
            "generated for a Redis that asks for a password: set it"
        )
    with quiet():
        from feast import FeatureStore

        return FeatureStore(repo_path=str(directory))
