"""Online features after materialize, on the real Redis (a dedicated database) and on the
embedded SQLite; the registry on the real PostgreSQL; what a command prints stays clean."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from medops.errors import MedopsError
from medops.features.build import prepare_features
from medops.features.online import FeatureLookup, materialize, online_features
from medops.features.redis_store import redis_client
from medops.features.store import FeatureRepo
from medops.features.training import historical_features
from medops.recipe import Recipe
from tests.features.conftest import PG_DATABASE

AS_OF = datetime(2026, 1, 1, tzinfo=UTC)
REVIEWS = [
    ("Zoloft", "Depression", "8", "2018-01-10"),
    ("Zoloft", "Anxiety", "4", "2018-02-10"),
    ("Zoloft", "Anxiety", "6", "2018-03-10"),
    ("Advil", "Pain", "9", "2020-05-01"),
]
ZOLOFT_NOW = {"reviews_before": 3, "mean_rating_before": 6.0, "top_condition_before": "Anxiety"}
NOTHING = {"reviews_before": None, "mean_rating_before": None, "top_condition_before": None}


def test_redis_lookup_after_materialize_and_unknown_ids(
    drug_recipe: Callable[..., Recipe],
    redis_connection: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    online = {"type": "redis", "connection_string": redis_connection}
    repo = prepare_features(drug_recipe(REVIEWS, online_store=online), as_of=AS_OF)
    materialize(repo)
    lookup = FeatureLookup(repo)
    found = lookup(["Zoloft", "Unknown drug", "Zoloft"])
    assert found == {"Zoloft": ZOLOFT_NOW, "Unknown drug": NOTHING}
    assert lookup([]) == {}
    # Feast's progress lines and warnings never reach what a command prints
    assert capsys.readouterr() == ("", "")
    # the values are in Redis itself, under this project's keys
    keys = redis_client(redis_connection).keys("*")
    assert keys and all(k.endswith(repo.spec.project.encode()) for k in keys)


def test_sqlite_is_the_embedded_default(drug_recipe: Callable[..., Recipe]) -> None:
    repo = prepare_features(drug_recipe(REVIEWS), as_of=AS_OF)
    assert (repo.directory / "online.db").is_file()
    assert online_features(repo, ["Zoloft"]) == {"Zoloft": NOTHING}  # not materialized yet
    materialize(repo)
    assert online_features(repo, ["Zoloft", "Nope"]) == {"Zoloft": ZOLOFT_NOW, "Nope": NOTHING}
    reopened = FeatureRepo.open(repo.directory)  # from the files alone, no recipe
    assert online_features(reopened, ["Advil"])["Advil"]["reviews_before"] == 1


def test_an_unreachable_redis_is_named_without_its_password(
    drug_recipe: Callable[..., Recipe], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_PASSWORD", "s3cret-never-printed")
    online = {"type": "redis", "connection_string": "127.0.0.1:1,db=2"}
    repo = prepare_features(drug_recipe(REVIEWS, online_store=online), as_of=AS_OF)
    config = (repo.directory / "feature_store.yaml").read_text()
    assert "s3cret" not in config and "password=${REDIS_PASSWORD}" in config
    with pytest.raises(MedopsError, match=r"127\.0\.0\.1:1 db 2") as error:
        materialize(repo)
    assert "s3cret" not in str(error.value)
    monkeypatch.delenv("REDIS_PASSWORD")
    with pytest.raises(MedopsError, match="REDIS_PASSWORD is not set"):
        FeatureLookup(FeatureRepo.open(repo.directory))


def test_the_registry_on_postgresql(
    drug_recipe: Callable[..., Recipe], postgres_registry: str
) -> None:
    import pandas as pd
    import psycopg

    repo = prepare_features(drug_recipe(REVIEWS, registry=postgres_registry), as_of=AS_OF)
    assert not (repo.directory / "registry.db").exists()
    with psycopg.connect(postgres_registry) as connection:
        names = connection.execute(
            "SELECT feature_view_name FROM feature_views WHERE project_id = %s",
            (repo.spec.project,),
        ).fetchall()
    assert names == [(repo.spec.view,)], PG_DATABASE
    rows = pd.DataFrame({"drug": ["Zoloft"], "timestamp": ["2018-03-10"]})
    assert historical_features(repo, rows)["reviews_before"].tolist() == [2]
