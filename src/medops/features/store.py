"""Open a generated feature repository with Feast.

``FeatureRepo`` is the handle every other module takes: the directory and its spec. It
opens Feast's ``FeatureStore`` from the generated ``feature_store.yaml`` (so what runs is
what the file says), or, on a cluster, from the chart's file that
``MEDOPS_FEATURE_STORE_CONFIG`` names, after checking the one environment variable the file
may need and, for the chart's file, that it is the spec's Feast project.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from medops.features.config import CLUSTER_CONFIG_ENV, REDIS_PASSWORD_ENV
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
            self._store = open_store(self.directory, self.spec.project)
        return self._store

    def online_client(self) -> Any:
        """A Redis client for the online store, or None for SQLite (checks it answers)."""
        online = self.store.config.online_store
        if getattr(online, "type", "") != "redis":
            return None
        return redis_client(online.connection_string)


def cluster_config() -> Path | None:
    """The chart's ``feature_store.yaml`` when ``MEDOPS_FEATURE_STORE_CONFIG`` names one."""
    value = os.environ.get(CLUSTER_CONFIG_ENV)
    return Path(value) if value else None


def _check_project(config: Path, text: str, project: str) -> None:
    """Feast namespaces registry entries and online keys by project: the chart's file must
    name the recipe's, or the store would apply, materialize and look up somewhere else."""
    configured = (yaml.safe_load(text) or {}).get("project")
    if configured != project:
        raise FeatureConfigError(
            f"{CLUSTER_CONFIG_ENV} names {config}, whose Feast project is {configured!r}, "
            f"but this feature store's project is {project!r} (the recipe's name, - as _): "
            f"set the chart's feast.project to {project!r}, or name the recipe after it"
        )


def open_store(directory: Path, project: str) -> Any:
    """Feast's ``FeatureStore`` for the repository at ``directory``, configured by the
    chart's file when ``MEDOPS_FEATURE_STORE_CONFIG`` is set, else by the repository's own;
    Feast substitutes ``${REDIS_PASSWORD}`` from the environment."""
    config = cluster_config()
    path = config or directory / FEATURE_STORE_YAML
    if config is not None and not config.is_file():
        raise FeatureConfigError(
            f"{CLUSTER_CONFIG_ENV} names {config}, which is not a file: mount the chart's "
            "Feast ConfigMap there, or unset it for the embedded store"
        )
    text = path.read_text(encoding="utf-8")
    if f"${{{REDIS_PASSWORD_ENV}}}" in text and not os.environ.get(REDIS_PASSWORD_ENV):
        raise FeatureConfigError(
            f"{REDIS_PASSWORD_ENV} is not set, and the feature store configuration {path} "
            "names a Redis that asks for a password: set it"
        )
    if config is not None:
        _check_project(config, text, project)
    with quiet():
        from feast import FeatureStore

        return FeatureStore(repo_path=str(directory), fs_yaml_file=path)
