"""Build a run's feature store: compute the feature rows, write them as parquet, generate
the Feast repository under ``<output_dir>/features`` and apply it.

Called after prepare (it reads the same sources), before training joins rows to it and
before ``online.materialize`` fills the online store. The directory holds
``feature_store.yaml``, ``definitions.py`` (for the ``feast`` CLI), ``medops_features.json``
(the spec), ``data/<view>.parquet`` (the offline rows), ``registry.db`` unless the registry
is PostgreSQL, ``online.db`` for SQLite, and ``manifest.json`` (counts, hashes, timing).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from hashlib import sha256
from pathlib import Path

import pandas as pd

from medops.assets import read_bytes
from medops.data.ingest import source_name
from medops.features.config import write_config
from medops.features.definitions import GENERATED, feast_objects
from medops.features.errors import FeatureConfigError
from medops.features.files import write_parquet
from medops.features.quiet import quiet
from medops.features.spec import recipe_spec
from medops.features.store import DIRECTORY, FeatureRepo
from medops.manifest import Manifest, sha256_path, timed, write_manifest
from medops.privacy.keys import key_id, load_key
from medops.recipe import Features, Recipe

STAGE = "features"


@dataclass
class Computed:
    """One entity's feature rows and what the manifest says of them."""

    frame: pd.DataFrame
    counts: Mapping[str, int]


def _features(recipe: Recipe) -> Features:
    if recipe.features is None:
        raise FeatureConfigError(
            "the recipe has no features: section; add one (docs/features.md), e.g. "
            "features: {entity: drug}"
        )
    return recipe.features


def compute(recipe: Recipe, key: bytes | None, as_of: pd.Timestamp) -> Computed:
    """The entity's feature rows from the recipe's sources."""
    features = _features(recipe)
    if features.entity == "drug":
        from medops.features.drug_history import drug_history, read_reviews

        reviews = read_reviews(recipe, features.columns)
        counts = {"source_rows": reviews.rows_in, "reviews": len(reviews.frame)}
        counts.update({f"skipped_{k}": v for k, v in reviews.skipped.items()})
        return Computed(drug_history(reviews.frame), counts)
    from medops.features.patient_context import patient_context, read_context

    if key is None:
        raise FeatureConfigError("features.entity patient needs the patient key")
    context = read_context(recipe)
    return Computed(patient_context(context, key, as_of), dict(context.counts))


def write_repo(recipe: Recipe, frame: pd.DataFrame, key: bytes | None) -> FeatureRepo:
    """Write the parquet, ``feature_store.yaml``, the spec and ``definitions.py``."""
    features = _features(recipe)
    directory = (recipe.out / DIRECTORY).resolve()
    spec = recipe_spec(recipe, directory, key_id(key) if key is not None else None)
    columns = [spec.join_key, "event_timestamp", *spec.features]
    write_parquet(frame[columns], Path(spec.data))
    write_config(features, spec.project, directory)
    spec.write(directory)
    (directory / "definitions.py").write_text(GENERATED)
    return FeatureRepo(directory, spec)


def apply(repo: FeatureRepo) -> None:
    """``FeatureStore.apply`` of the repository's entity and feature view."""
    with quiet():
        repo.store.apply(list(feast_objects(repo.spec)))


def prepare_features(
    recipe: Recipe, as_of: datetime | None = None, key: bytes | None = None
) -> FeatureRepo:
    """Compute, write and apply the recipe's feature store; returns its handle.

    ``as_of`` (default now) dates the patient rows that hold today's context; ``key``
    (default ``$MEDOPS_DEID_KEY``) makes the patient keys, as prepare does.
    """
    features = _features(recipe)
    if features.entity == "patient" and key is None:
        key = load_key()  # PseudonymKeyError names the variable: the user sets it
    when = pd.Timestamp(as_of or datetime.now(UTC))
    when = when.tz_localize("UTC") if when.tzinfo is None else when.tz_convert("UTC")
    manifest = Manifest(stage=STAGE, recipe_hash=recipe.content_hash())
    for source in recipe.data.sources:
        digest = sha256(read_bytes(source.uri, source.member)).hexdigest()
        manifest.inputs[source_name(source)] = {"path": source.uri, "sha256": digest}
    with timed(manifest):
        computed = compute(recipe, key, when)
        repo = write_repo(recipe, computed.frame, key)
        apply(repo)
    manifest.counts.update(computed.counts)
    manifest.counts.update(
        feature_rows=len(computed.frame), entities=computed.frame[repo.spec.join_key].nunique()
    )
    manifest.outputs = {"repository": str(repo.directory), "offline": repo.spec.data}
    manifest.extra = {
        "entity": features.entity,
        "features": list(repo.spec.features),
        "online_store": features.online_store.type,
        "offline_sha256": sha256_path(Path(repo.spec.data)),
        "as_of": when.isoformat(),
    }
    write_manifest(manifest, repo.directory)
    return repo
