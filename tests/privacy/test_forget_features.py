"""`medops data forget` also erases the patient from every patient feature store under the
store: its rows in the offline parquet and its entry in the online store (real Redis)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from medops.cli import main
from medops.features.build import prepare_features
from medops.features.online import FeatureLookup, materialize
from medops.features.store import FeatureRepo
from medops.privacy.erasure import AUDIT, forget
from medops.privacy.keys import patient_key
from medops.recipe import Recipe
from tests.features.conftest import KEY

PATIENT = "Patient/p1"
WANTED = patient_key(KEY.encode(), PATIENT)


@pytest.fixture
def store(
    fhir_recipe: Callable[..., Recipe],
    redis_connection: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    monkeypatch.setenv("MEDOPS_DEID_KEY", KEY)
    monkeypatch.delenv("MEDOPS_MLFLOW_TRACKING_URI", raising=False)
    online = {"type": "redis", "connection_string": redis_connection}
    recipe = fhir_recipe(online_store=online)
    repo = prepare_features(recipe, as_of=datetime(2026, 1, 1, tzinfo=UTC), key=KEY.encode())
    materialize(repo)
    return recipe.out


def test_forget_erases_the_patient_from_the_feature_store(store: Path) -> None:
    data = store / "features" / "data" / "patient_features.parquet"
    rows = pq.read_table(data)["patient_key"].to_pylist().count(WANTED)

    report = forget(PATIENT, store, KEY.encode())

    assert report.feature_rows_removed == rows > 0
    [erased] = report.to_dict()["feature_stores"]
    assert erased == {
        "path": "features",
        "offline_rows_removed": rows,
        "online_entities_removed": 1,
        "other_key": False,
    }
    assert report.complete
    assert not any("no row of this patient" in line for line in report.warnings())
    assert WANTED not in pq.read_table(data)["patient_key"].to_pylist()
    context = FeatureLookup(FeatureRepo.open(store / "features"))([WANTED])[WANTED]
    assert set(context.values()) == {None}
    audit = (store / AUDIT).read_text()
    assert WANTED not in audit and "p1" not in audit


def test_the_cli_reports_feature_rows(store: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "forget", "--patient", PATIENT, "--store", str(store)]) == 0
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert report["feature_rows_removed"] > 0
    assert report["feature_stores"][0]["online_entities_removed"] == 1
    assert PATIENT not in out + err and WANTED not in out + err
