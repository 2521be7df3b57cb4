"""Builders for the feature-store tests: tiny drug-review tables, a FHIR bundle with planted
future events, recipes that read them, and the real Redis and PostgreSQL on loopback.

Redis and PostgreSQL run on every developer machine and on CI: a test that needs one and
cannot reach it fails with a message saying so, never skips.
"""

from __future__ import annotations

import base64
import csv
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from medops.recipe import Recipe, build_recipe

KEY = "a-feature-test-key-of-more-than-16-bytes"
REDIS = "127.0.0.1:6379"
REDIS_DB = 13  # this suite's own database: only it is ever flushed
POSTGRES = "postgresql://postgres@127.0.0.1:5432"
PG_DATABASE = "medops_features_test"
REVIEW_COLUMNS = ["", "drugName", "condition", "review", "rating", "date", "usefulCount"]


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> bytes:
    monkeypatch.setenv("MEDOPS_DEID_KEY", KEY)
    return KEY.encode()


@pytest.fixture
def redis_connection() -> Iterator[str]:
    """Feast's connection string for this suite's Redis database, emptied before and after
    each test (only that database: other users of the server keep theirs)."""
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.exceptions.RedisError as error:
        pytest.fail(
            f"Redis on {REDIS} is required by tests/features (online store tests) and did not "
            f"answer ({type(error).__name__}); start it (CI and the dev machines run one)"
        )
    client.flushdb()
    yield f"{REDIS},db={REDIS_DB}"
    client.flushdb()


@pytest.fixture(scope="session")
def postgres_registry() -> Iterator[str]:
    """A fresh PostgreSQL database for Feast's SQL registry, dropped afterwards."""
    import psycopg

    try:
        admin = psycopg.connect(f"{POSTGRES}/postgres", autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        pytest.fail(
            f"PostgreSQL on {POSTGRES} is required by tests/features (SQL registry test) and "
            f"refused ({type(error).__name__}); start it (CI and the dev machines run one)"
        )
    with admin:
        admin.execute(f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {PG_DATABASE}")
        yield f"{POSTGRES}/{PG_DATABASE}"
        admin.execute(f"DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)")


def write_reviews(path: Path, rows: list[tuple[str, str, str, str]]) -> Path:
    """Drugs.com-shaped TSV from (drug, condition, rating, date) tuples."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t")
        writer.writerow(REVIEW_COLUMNS)
        for number, (drug, condition, rating, date) in enumerate(rows, start=1):
            text = f"Review {number} of a drug, long enough to keep."
            writer.writerow([number, drug, condition, text, rating, date, 1])
    return path


@pytest.fixture
def drug_recipe(tmp_path: Path) -> Callable[..., Recipe]:
    """A recipe over hand-made reviews (train, and optionally test), with ``features``."""

    def build(
        train: list[tuple[str, str, str, str]],
        test: list[tuple[str, str, str, str]] | None = None,
        **features: Any,
    ) -> Recipe:
        sources = []
        for role, rows in (("train", train), ("test", test or [train[0]])):
            path = write_reviews(tmp_path / f"{role}.tsv", rows)
            sources.append({"uri": str(path), "format": "tsv", "role": role})
        return build_recipe(
            {
                "name": "drug-features",
                "output_dir": str(tmp_path / "run"),
                "data": {
                    "sources": sources,
                    "columns": {"id": "", "text": "review", "label": "condition"},
                },
                "features": {"entity": "drug", **features},
            }
        )

    return build


def _note(number: int, patient: str, date: str) -> dict[str, Any]:
    text = base64.b64encode(f"Note {number}: follow-up visit.".encode()).decode()
    return {
        "resourceType": "DocumentReference",
        "id": f"doc-{number}",
        "status": "current",
        "type": {"coding": [{"display": "Progress note"}]},
        "subject": {"reference": patient},
        "date": date,
        "content": [{"attachment": {"contentType": "text/plain", "data": text}}],
    }


def _condition(number: int, patient: str, **when: str) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": f"cond-{number}",
        "subject": {"reference": patient},
        "code": {"coding": [{"display": "Type 2 diabetes"}]},
        **when,
    }


def _observation(number: int, patient: str, when: str, name: str, value: float) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": f"obs-{number}",
        "status": "final",
        "subject": {"reference": patient},
        "code": {"coding": [{"display": name}], "text": "free text never kept"},
        "effectiveDateTime": when,
        "valueQuantity": {"value": value, "unit": "%"},
    }


PLANTED_VALUE = 999.0  # an observation dated the day after doc-1
FUTURE_OBSERVATION = "Planted future observation"


def patient_bundle(role: str = "train") -> dict[str, Any]:
    """p1 (female, born 1950-06-15): doc-1 2024-03-01T09:30Z, doc-2 2024-05-01; a Condition
    in 2020, one recorded at doc-1's very instant, one on 2024-04-15; HbA1c 7.1 before
    doc-1 and a planted 999 the day after it. p2 (male, born 1990-01-01): doc-3
    2024-04-01, and a Condition and an Observation only after it. The test bundle repeats
    p2, doc-3 and p2's Condition, as exports of one EHR do: each must count once."""
    p1, p2 = "Patient/p1", "Patient/p2"
    resources = [
        {"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1950-06-15"},
        {"resourceType": "Patient", "id": "p2", "gender": "male", "birthDate": "1990-01-01"},
        _note(1, p1, "2024-03-01T09:30:00Z"),
        _note(2, p1, "2024-05-01"),
        _note(3, p2, "2024-04-01"),
        _condition(1, p1, onsetDateTime="2020-01-01"),
        _condition(2, p1, recordedDate="2024-03-01T09:30:00Z"),
        _condition(3, p1, onsetDateTime="2024-04-15"),
        _condition(4, p2, onsetDateTime="2025-01-01"),
        _condition(5, p2),  # undated: counted nowhere
        _observation(1, p1, "2024-02-01", "Hemoglobin A1c", 7.1),
        _observation(2, p1, "2024-03-02", FUTURE_OBSERVATION, PLANTED_VALUE),
        _observation(3, p2, "2024-06-01", FUTURE_OBSERVATION, PLANTED_VALUE),
    ]
    if role == "test":
        resources = [resources[1], resources[4], resources[8]]
    entries = [{"fullUrl": f"{r['resourceType']}/{r['id']}", "resource": r} for r in resources]
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


@pytest.fixture
def fhir_recipe(tmp_path: Path) -> Callable[..., Recipe]:
    """A recipe over ``patient_bundle`` (train and test), with ``features`` (entity patient)."""

    def build(output: str = "run", **features: Any) -> Recipe:
        sources = []
        for role in ("train", "test"):
            path = tmp_path / f"{role}-bundle.json"
            path.write_text(json.dumps(patient_bundle(role)), encoding="utf-8")
            sources.append({"uri": str(path), "format": "fhir", "role": role})
        return build_recipe(
            {
                "name": "patient-features",
                "output_dir": str(tmp_path / output),
                "data": {
                    "sources": sources,
                    "columns": {"id": "id", "text": "text", "label": "type.coding.0.display"},
                },
                "features": {"entity": "patient", **features},
            }
        )

    return build
