"""Online features: fill the online store from the offline rows, and look entities up.

``materialize`` loads each entity's latest row into SQLite or Redis; ``FeatureLookup``
keeps one Feast store open for repeated lookups (a server holds one). An id the store does
not know returns no context (every feature None), not an error: a new patient or drug is
normal at serving time. This module never imports ``medops.data``, so serving can use it
within its import contract.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from medops.features.quiet import quiet
from medops.features.spec import FEATURE_STORE_YAML, recipe_spec
from medops.features.store import DIRECTORY, FeatureRepo, cluster_config
from medops.recipe import Recipe

EPOCH = datetime(1900, 1, 1, tzinfo=UTC)  # before any event medops reads


def materialize(repo: FeatureRepo, end: datetime | None = None) -> datetime:
    """Load every entity's latest feature row up to ``end`` (default now) into the online
    store; returns ``end``. Checks a Redis store answers first, naming it if not."""
    end = end or datetime.now(UTC)
    repo.online_client()
    with quiet():
        repo.store.materialize(start_date=EPOCH, end_date=end)
    return end


class FeatureLookup:
    """Online lookups against one repository, its Feast store opened once."""

    def __init__(self, repo: FeatureRepo) -> None:
        repo.online_client()  # an unreachable Redis fails here, by name, not per request
        self.repo = repo
        self.key = repo.spec.join_key  # how a request names the entity
        self._store = repo.store
        self._refs = repo.spec.refs

    def __call__(self, entity_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """``{id: {feature: value or None}}`` for each distinct id asked."""
        spec = self.repo.spec
        unique = list(dict.fromkeys(str(i) for i in entity_ids))
        if not unique:
            return {}
        found = self._store.get_online_features(
            features=self._refs, entity_rows=[{spec.join_key: i} for i in unique]
        ).to_dict()
        return {
            entity: {name: found[name][position] for name in spec.features}
            for position, entity in enumerate(unique)
        }


def serving_repo(recipe: Recipe) -> Path:
    """Where a server looks for the recipe's feature repository (prepare built it there)."""
    return recipe.out / DIRECTORY


def serving_lookup(recipe: Recipe) -> FeatureLookup | None:
    """The lookup a server holds for a model trained with context: None when the recipe has
    no ``features:`` or no repository was built at ``serving_repo`` (the caller says what
    that means for its answers). On a cluster (``MEDOPS_FEATURE_STORE_CONFIG``) the store is
    the chart's and the spec follows from the recipe: a predictor mounts no run volume."""
    if recipe.features is None:
        return None
    directory = serving_repo(recipe)
    if cluster_config() is not None:
        return FeatureLookup(FeatureRepo(directory, recipe_spec(recipe, directory)))
    if not (directory / FEATURE_STORE_YAML).is_file():
        return None
    return FeatureLookup(FeatureRepo.open(directory))


def online_features(repo: FeatureRepo, entity_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """One lookup; for many, keep a ``FeatureLookup``."""
    return FeatureLookup(repo)(entity_ids)
