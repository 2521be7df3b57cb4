"""The cluster's Feast (the Helm chart's feature_store.yaml, named by MEDOPS_FEATURE_STORE_CONFIG):
the build applies to its SQL registry on the real PostgreSQL, materializes into its Redis
on loopback, and a server finds the features with no run directory at all."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
import yaml

from medops.features.build import prepare_features
from medops.features.config import CLUSTER_CONFIG_ENV
from medops.features.errors import FeatureConfigError
from medops.features.online import materialize, serving_lookup
from medops.features.spec import read_spec, recipe_spec
from medops.features.store import FeatureRepo
from medops.features.training import historical_features
from medops.recipe import Recipe
from tests.features.conftest import REDIS, REDIS_DB

AS_OF = datetime(2026, 1, 1, tzinfo=UTC)
REVIEWS = [
    ("Zoloft", "Depression", "8", "2018-01-10"),
    ("Zoloft", "Anxiety", "4", "2018-02-10"),
    ("Advil", "Pain", "9", "2020-05-01"),
]
CLUSTER_DB = 11  # not the suite's 13 (conftest) nor the benchmark's 15: flushed here only
assert CLUSTER_DB != REDIS_DB


@pytest.fixture
def cluster_redis() -> Iterator[object]:
    """A client of this test's Redis database, emptied before and after."""
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379, db=CLUSTER_DB, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.exceptions.RedisError as error:
        pytest.fail(f"Redis on {REDIS} is required here and did not answer ({error})")
    client.flushdb()
    yield client
    client.flushdb()


def chart_config(path: Path, project: str, registry: str) -> Path:
    """What charts/medops/templates/feast.yaml renders, pointed at the loopback servers."""
    config = {
        "project": project,
        "provider": "local",
        "registry": {
            "registry_type": "sql",
            "path": registry.replace("postgresql://", "postgresql+psycopg://", 1),
            "cache_ttl_seconds": 60,
        },
        "offline_store": {"type": "duckdb"},
        "online_store": {"type": "redis", "connection_string": f"{REDIS},db={CLUSTER_DB}"},
        "entity_key_serialization_version": 3,
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_the_chart_config_holds_registry_and_online_store_while_the_spec_stays_local(
    drug_recipe: Callable[..., Recipe],
    postgres_registry: str,
    cluster_redis: object,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import psycopg

    recipe = drug_recipe(REVIEWS)  # the recipe itself says: SQLite, a registry file
    config = chart_config(tmp_path / "chart.yaml", "drug_features", postgres_registry)
    monkeypatch.setenv(CLUSTER_CONFIG_ENV, str(config))
    repo = prepare_features(recipe, as_of=AS_OF)
    materialize(repo)
    # applied to the chart's registry, materialized into the chart's Redis, nothing local
    assert not (repo.directory / "registry.db").exists()
    assert not (repo.directory / "online.db").exists()
    with psycopg.connect(postgres_registry) as connection:
        views = connection.execute(
            "SELECT feature_view_name FROM feature_views WHERE project_id = %s",
            ("drug_features",),
        ).fetchall()
    assert views == [("drug_features",)]
    assert cluster_redis.keys("*")  # type: ignore[attr-defined]
    # the offline join reads the run's parquet through the chart's duckdb store
    rows = pd.DataFrame({"drug": ["Zoloft"], "timestamp": ["2018-03-01"]})
    assert historical_features(repo, rows)["reviews_before"].tolist() == [2]
    # the spec a server derives from the recipe is the one the build wrote
    assert recipe_spec(recipe, repo.directory) == read_spec(repo.directory)
    # a predictor mounts no run volume: the recipe and the chart's file are enough
    shutil.rmtree(repo.directory)
    lookup = serving_lookup(recipe)
    assert lookup is not None
    assert lookup(["Zoloft", "Nope"]) == {
        "Zoloft": {
            "reviews_before": 2,
            "mean_rating_before": 6.0,
            "top_condition_before": "Anxiety",
        },
        "Nope": {"reviews_before": None, "mean_rating_before": None, "top_condition_before": None},
    }


def test_without_the_variable_a_server_without_the_run_directory_has_no_store(
    drug_recipe: Callable[..., Recipe],
) -> None:
    assert serving_lookup(drug_recipe(REVIEWS)) is None  # nothing built: embedded, unchanged


def test_a_chart_project_other_than_the_recipes_is_refused_naming_both(
    drug_recipe: Callable[..., Recipe], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = prepare_features(drug_recipe(REVIEWS), as_of=AS_OF)  # embedded build
    config = chart_config(tmp_path / "chart.yaml", "medops", "postgresql://nobody@127.0.0.1:1/x")
    monkeypatch.setenv(CLUSTER_CONFIG_ENV, str(config))
    reopened = FeatureRepo.open(repo.directory)
    with pytest.raises(FeatureConfigError) as error:
        _ = reopened.store
    message = str(error.value)
    assert "'medops'" in message and "'drug_features'" in message
    assert "feast.project" in message and str(config) in message


def test_a_variable_naming_no_file_says_what_to_mount(
    drug_recipe: Callable[..., Recipe], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = prepare_features(drug_recipe(REVIEWS), as_of=AS_OF)
    monkeypatch.setenv(CLUSTER_CONFIG_ENV, str(tmp_path / "absent.yaml"))
    with pytest.raises(FeatureConfigError, match=r"absent\.yaml.*ConfigMap"):
        _ = FeatureRepo.open(repo.directory).store
