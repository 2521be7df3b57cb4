"""What a generated feature repository holds, as data: the one description that
``definitions`` turns into Feast objects and every other module reads.

Kept as ``medops_features.json`` beside ``feature_store.yaml``, so the repository can be
opened again (a later lookup, an erasure) without the recipe that made it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from medops.features.errors import FeatureStoreMissing
from medops.recipe import Recipe

SPEC = "medops_features.json"
FEATURE_STORE_YAML = "feature_store.yaml"

DType = Literal["int64", "float64", "string"]
# each entity's join key and features, with the Feast type each is declared as
ENTITIES: dict[str, tuple[str, dict[str, DType]]] = {
    "drug": (
        "drug",
        {
            "reviews_before": "int64",
            "mean_rating_before": "float64",
            "top_condition_before": "string",
        },
    ),
    "patient": (
        "patient_key",
        {
            "age_band": "string",
            "sex": "string",
            "conditions_before": "int64",
            "last_observation_code": "string",
            "last_observation_value": "float64",
        },
    ),
}


@dataclass(frozen=True)
class RepoSpec:
    """One entity, one feature view over one parquet file."""

    project: str  # Feast project: namespaces the registry and the online store's keys
    entity: str  # drug | patient
    join_key: str  # the column training rows and lookups name the entity by
    view: str  # the feature view's name
    features: dict[str, DType]  # the served features, in order
    ttl_seconds: int  # 0: no limit
    data: str  # absolute path of the offline parquet (duckdb reads relative ones from the CWD)
    key_id: str | None = None  # patient entity: names the key patient_key was made with

    @property
    def refs(self) -> list[str]:
        """Feast's feature references, ``view:feature``."""
        return [f"{self.view}:{name}" for name in self.features]

    def write(self, directory: Path) -> Path:
        path = directory / SPEC
        # not sorted: ``features`` keeps its order, the order of the context line training
        # wrote, which a server reading this file must write the same way
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return path


def read_spec(directory: Path) -> RepoSpec:
    """The spec of a generated repository; a directory without one is a user error."""
    path = Path(directory) / SPEC
    if not path.is_file():
        raise FeatureStoreMissing(
            f"{directory} holds no generated feature repository ({SPEC}): run the features "
            "build of the recipe (medops.features.build.prepare_features) first"
        )
    return RepoSpec(**json.loads(path.read_text(encoding="utf-8")))


def project_name(recipe: Recipe) -> str:
    """Feast project names take letters, digits and underscores; recipe names also dashes."""
    return recipe.name.replace("-", "_")


def recipe_spec(recipe: Recipe, directory: Path, key_id: str | None = None) -> RepoSpec:
    """The spec the build writes for ``recipe`` into ``directory``: everything in it follows
    from the recipe, so a server without the volume the build wrote to (a cluster predictor
    reading the chart's registry and Redis) derives the same one."""
    if recipe.features is None:
        raise FeatureStoreMissing(
            f"recipe {recipe.name} has no features: section, so it names no feature store"
        )
    features = recipe.features
    join_key, types = ENTITIES[features.entity]
    view = f"{features.entity}_features"
    return RepoSpec(
        project=project_name(recipe),
        entity=features.entity,
        join_key=join_key,
        view=view,
        features={name: types[name] for name in features.names},
        ttl_seconds=(features.ttl_days or 0) * 86_400,
        data=str(directory / "data" / f"{view}.parquet"),
        key_id=key_id,
    )
