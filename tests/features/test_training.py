"""The point-in-time training join through Feast (duckdb offline store): no feature from
after a row's time reaches it, and every row comes back, in order, even with no history."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from medops.errors import MedopsError
from medops.features.build import prepare_features
from medops.features.store import FeatureRepo
from medops.features.training import historical_features
from medops.privacy.keys import patient_key
from medops.recipe import Recipe
from tests.features.conftest import KEY, PLANTED_VALUE

AS_OF = datetime(2026, 1, 1, tzinfo=UTC)
# (drug, condition, rating, date): "Latedrug" is only reviewed in 2020
REVIEWS = [
    ("Zoloft", "Depression", "8", "2018-01-10"),
    ("Zoloft", "Anxiety", "4", "2018-02-10"),
    ("Latedrug", "Pain", "9", "2020-05-01"),
    ("Latedrug", "Pain", "7", "2020-06-01"),
]


def _key(patient: str) -> str:
    return patient_key(KEY.encode(), patient)


def test_a_feature_dated_after_a_note_never_reaches_it(
    fhir_recipe: Callable[..., Recipe], key: bytes
) -> None:
    """Planted: an Observation of 999 the day after doc-1 (and after doc-3 for p2), a
    Condition at doc-1's very instant, and the build-time row holding everything."""
    repo = prepare_features(fhir_recipe(), as_of=AS_OF, key=key)
    rows = pd.DataFrame(
        {
            "id": ["doc-1", "doc-3", "doc-2"],
            "patient_key": [_key("Patient/p1"), _key("Patient/p2"), _key("Patient/p1")],
            "timestamp": ["2024-03-01T09:30:00Z", "2024-04-01", "2024-05-01"],
        }
    )
    joined = historical_features(repo, rows).set_index("id")
    assert joined.loc["doc-1", "last_observation_value"] == 7.1
    assert joined.loc["doc-1", "conditions_before"] == 1
    assert pd.isna(joined.loc["doc-3", "last_observation_value"])
    assert joined.loc["doc-3", "conditions_before"] == 0
    # the planted value does reach the note written after it: the join is not just empty
    assert joined.loc["doc-2", "last_observation_value"] == PLANTED_VALUE
    assert joined["conditions_before"].dtype == "Int64"  # duckdb's floats made ints again
    assert (joined.loc["doc-1", "age_band"], joined.loc["doc-3", "sex"]) == ("70-79", "male")


def _file_store_join(repo: FeatureRepo, rows: pd.DataFrame, directory: Path) -> pd.DataFrame:
    """The same view joined by Feast's file (Dask) offline store, for comparison."""
    from feast import FeatureStore
    from feast.repo_config import RepoConfig

    from medops.features.definitions import feast_objects
    from medops.features.quiet import quiet

    config = RepoConfig(
        project="dask_comparison",
        provider="local",
        registry=str(directory / "registry.db"),
        offline_store={"type": "file"},
        online_store={"type": "sqlite", "path": str(directory / "online.db")},
        entity_key_serialization_version=3,
    )
    with quiet():
        store = FeatureStore(config=config)
        store.apply(list(feast_objects(repo.spec)))
        entities = rows.rename(columns={"timestamp": "event_timestamp"})
        entities["event_timestamp"] = pd.to_datetime(entities["event_timestamp"], utc=True)
        return store.get_historical_features(entity_df=entities, features=repo.spec.refs).to_df()


def test_a_row_before_its_entitys_first_feature_is_kept_with_nulls(
    drug_recipe: Callable[..., Recipe], tmp_path: Path
) -> None:
    """Latedrug's feature rows all date from 2020; a 2019 row of it must stay, with nulls.
    Feast's file (Dask) offline store drops such a row without a word (``_filter_ttl``):
    that is why medops joins on duckdb. An entity with no feature row at all is kept by both."""
    repo = prepare_features(drug_recipe(REVIEWS), as_of=AS_OF)
    rows = pd.DataFrame(
        {
            "id": [1, 2, 3, 4],
            "drug": ["Latedrug", "Zoloft", "Neverseen", "Latedrug"],
            "timestamp": ["2019-03-01", "2019-03-01", "2019-03-01", "2020-07-01"],
        }
    )
    joined = historical_features(repo, rows)
    assert joined["id"].tolist() == [1, 2, 3, 4]  # every row, in the input's order
    assert pd.isna(joined.loc[0, "reviews_before"]) and pd.isna(joined.loc[2, "reviews_before"])
    assert joined.loc[1, "reviews_before"] == 2
    assert joined.loc[1, "top_condition_before"] == "Anxiety"  # 1-1 tie: alphabetical
    assert joined.loc[3, "reviews_before"] == 2 and joined.loc[3, "mean_rating_before"] == 8.0

    dask = _file_store_join(repo, rows, tmp_path / "dask")
    assert sorted(dask["id"]) == [2, 3, 4]  # the file store lost row 1, silently


def test_rows_without_a_key_or_time_come_back_with_nulls_and_duplicates_twice(
    drug_recipe: Callable[..., Recipe],
) -> None:
    repo = prepare_features(drug_recipe(REVIEWS), as_of=AS_OF)
    rows = pd.DataFrame(
        {
            "drug": [None, "Zoloft", "Zoloft", "", "Zoloft", "Zoloft"],
            "timestamp": ["2019-01-01", "", "x", None, "2019-01-01", "2019-01-01"],
        },
        index=[10, 11, 12, 13, 14, 15],
    )
    joined = historical_features(repo, rows)
    assert joined.index.tolist() == [10, 11, 12, 13, 14, 15]
    assert joined["reviews_before"].tolist() == [pd.NA] * 4 + [2, 2]  # duplicates: both kept


def test_rows_must_name_the_entity_and_the_time(drug_recipe: Callable[..., Recipe]) -> None:
    repo = prepare_features(drug_recipe(REVIEWS), as_of=AS_OF)
    with pytest.raises(MedopsError, match="no 'drug' column"):
        historical_features(repo, pd.DataFrame({"drugName": ["Zoloft"], "timestamp": ["2020"]}))
    with pytest.raises(MedopsError, match="no 'written' column"):
        historical_features(repo, pd.DataFrame({"drug": ["Zoloft"]}), timestamp="written")
