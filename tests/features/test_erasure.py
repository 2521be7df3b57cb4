"""Erasing one patient from a feature store: the offline parquet and the online store
(the real Redis, and SQLite) lose exactly that patient's rows, and say how many."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pyarrow.parquet as pq
import pytest

from medops.features.build import prepare_features
from medops.features.erasure import erase_entity, feature_repos
from medops.features.online import FeatureLookup, materialize
from medops.features.redis_store import redis_client
from medops.privacy.keys import key_id, patient_key
from medops.recipe import Recipe
from tests.features.conftest import KEY

AS_OF = datetime(2026, 1, 1, tzinfo=UTC)
P1, P2 = patient_key(KEY.encode(), "Patient/p1"), patient_key(KEY.encode(), "Patient/p2")


def _keys(path: str) -> list[str]:
    return pq.read_table(path, columns=["patient_key"])["patient_key"].to_pylist()


@pytest.mark.parametrize("online", ["redis", "sqlite"])
def test_erasure_removes_the_patient_offline_and_online(
    fhir_recipe: Callable[..., Recipe], key: bytes, redis_connection: str, online: str
) -> None:
    store = {"type": "redis", "connection_string": redis_connection} if online == "redis" else {}
    repo = prepare_features(fhir_recipe(online_store=store), as_of=AS_OF, key=key)
    materialize(repo)
    before = _keys(repo.spec.data)
    assert FeatureLookup(repo)([P1])[P1]["sex"] == "female"

    outcome = erase_entity(repo, P1, key_id(key))

    assert outcome.offline_rows_removed == before.count(P1) > 0
    assert outcome.online_entities_removed == 1
    assert _keys(repo.spec.data) == [k for k in before if k != P1]
    found = FeatureLookup(repo)([P1, P2])
    assert set(found[P1].values()) == {None}  # gone: no context, not an error
    assert found[P2]["sex"] == "male"  # the other patient is untouched
    if online == "redis":
        assert not [k for k in redis_client(redis_connection).keys("*") if P1.encode() in k]
    manifest = (repo.directory / "manifest.json").read_text()
    assert f'"feature_rows_erased": {outcome.offline_rows_removed}' in manifest
    assert P1 not in manifest
    again = erase_entity(repo, P1, key_id(key))  # a rerun finds nothing and fails nothing
    assert (again.offline_rows_removed, again.online_entities_removed) == (0, 0)


def test_a_store_made_under_another_key_is_not_searched(
    fhir_recipe: Callable[..., Recipe], key: bytes
) -> None:
    repo = prepare_features(fhir_recipe(), as_of=AS_OF, key=key)
    outcome = erase_entity(repo, P1, key_id(b"another-key-of-sixteen-bytes"))
    assert outcome.other_key and outcome.offline_rows_removed == 0
    assert P1 in _keys(repo.spec.data)


def test_patient_stores_are_found_under_a_store(
    fhir_recipe: Callable[..., Recipe], drug_recipe: Callable[..., Recipe], key: bytes
) -> None:
    patients = prepare_features(fhir_recipe(output="patients"), as_of=AS_OF, key=key)
    drugs = prepare_features(drug_recipe([("A", "B", "1", "2020-01-01")]), as_of=AS_OF)
    root = patients.directory.parents[1]
    assert drugs.directory.is_relative_to(root)
    assert feature_repos(root, entity="patient") == [patients.directory]
    assert feature_repos(root) == sorted([patients.directory, drugs.directory])
