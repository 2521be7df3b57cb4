"""Prepare with context: the prepared rows, each with its features as of its own time.

A recipe with ``features:`` builds its Feast store from the sources
(``medops.features.build``), then prepare joins every kept row to it point in time
(``medops.features.training``): a row sees only what was known before it was written.
The row's time is read from ``data.columns.timestamp`` and never written; the features
land in the row's ``context``, which the task's model reads (the classifier as side
inputs of its head). The online store is then filled with each entity's latest features,
for the endpoint. Without ``features:`` this is plain prepare.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from medops.data.ingest import Record
from medops.data.prepare import prepare as prepare_rows
from medops.errors import ConfigurationError
from medops.features.build import prepare_features
from medops.features.online import materialize
from medops.features.store import FeatureRepo
from medops.features.training import historical_features
from medops.manifest import Manifest
from medops.privacy.keys import PATIENT_KEY
from medops.recipe import Features, Recipe

log = logging.getLogger(__name__)
TIME = "__medops_time"  # the join's time column, never written


def check_joinable(recipe: Recipe, features: Features) -> None:
    """The rows must carry the entity's key and a time, or nothing can be joined."""
    columns = recipe.data.columns
    formats = {source.format for source in recipe.data.sources}
    if columns.timestamp is None and not formats <= {"fhir", "fhir-ndjson"}:
        raise ConfigurationError(
            "features: the rows need a time to join features as of: set "
            "data.columns.timestamp to the column saying when each row was written (the "
            "drug-review demo: date)"
        )
    if features.entity == "drug" and "drug" not in columns.extra:
        raise ConfigurationError(
            "features.entity drug: the rows need the drug's name; add it to "
            "data.columns.extra as drug: <column> (the drug-review demo: drug: drugName)"
        )


def _plain(value: Any) -> Any:
    """A JSON value: pandas' NA/NaN as null, numpy scalars as Python numbers."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


class ContextJoiner:
    """Joins rows to the store, split by split, counting rows with and without history."""

    def __init__(self, repo: FeatureRepo) -> None:
        self.repo = repo
        self.with_history = 0
        self.without_history = 0

    def __call__(
        self, records: Sequence[Record], rows: Sequence[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Each row's features as of its record's time (all null where nothing was known)."""
        spec = self.repo.spec
        if spec.join_key == PATIENT_KEY:
            keys = [row.get(PATIENT_KEY) for row in rows]
        else:
            keys = [row.get("fields", {}).get(spec.join_key) for row in rows]
        times = [record.timestamp or None for record in records]
        joined = historical_features(
            self.repo, pd.DataFrame({spec.join_key: keys, TIME: times}), TIME
        )
        contexts = [
            {name: _plain(joined[name].iloc[i]) for name in spec.features} for i in range(len(rows))
        ]
        known = sum(any(v is not None for v in context.values()) for context in contexts)
        self.with_history += known
        self.without_history += len(contexts) - known
        return contexts


def prepare(recipe: Recipe, out_dir: Path) -> Manifest:
    """Prepare, with each row's point-in-time ``context`` when the recipe has features."""
    if recipe.features is None:
        return prepare_rows(recipe, out_dir)
    check_joinable(recipe, recipe.features)
    log.info("prepare: building the %s feature store", recipe.features.entity)
    joiner = ContextJoiner(prepare_features(recipe))
    manifest = prepare_rows(recipe, out_dir, joiner)
    # the online store serves each entity's latest features to the endpoint (classifier)
    manifest.extra["features_materialized_to"] = materialize(joiner.repo).isoformat()
    manifest.counts.update(
        context_rows_with_history=joiner.with_history,
        context_rows_without_history=joiner.without_history,
    )
    manifest.extra["context_features"] = list(joiner.repo.spec.features)
    log.info(
        "prepare: context joined: %d rows with history, %d without",
        joiner.with_history,
        joiner.without_history,
    )
    return manifest
