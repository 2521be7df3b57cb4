"""The generated repository: absolute paths, duckdb offline store, a spec the feast CLI's
definitions.py reads, a manifest whose counts add up, and one recipe error per mistake."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml

from medops.errors import MedopsError
from medops.features.build import prepare_features
from medops.features.spec import ENTITIES, read_spec
from medops.recipe import CATEGORICAL_FEATURES, FEATURE_SETS, Recipe, RecipeError, build_recipe
from tests.features.test_drug_history import REVIEWS

AS_OF = datetime(2026, 1, 1, tzinfo=UTC)


def test_the_repository_files(drug_recipe: Callable[..., Recipe]) -> None:
    recipe = drug_recipe(REVIEWS, feature_set=["mean_rating_before"], ttl_days=30)
    repo = prepare_features(recipe, as_of=AS_OF)
    assert repo.directory == (recipe.out / "features").resolve()
    config = yaml.safe_load((repo.directory / "feature_store.yaml").read_text())
    assert config["offline_store"] == {"type": "duckdb"}
    assert config["registry"] == str(repo.directory / "registry.db")
    assert config["online_store"] == {"type": "sqlite", "path": str(repo.directory / "online.db")}
    spec = read_spec(repo.directory)
    assert spec.data.startswith("/") and spec.data.endswith("drug_features.parquet")
    assert list(spec.features) == ["mean_rating_before"] and spec.ttl_seconds == 30 * 86_400
    namespace: dict[str, Any] = {"__file__": str(repo.directory / "definitions.py")}
    exec((repo.directory / "definitions.py").read_text(), namespace)  # as the feast CLI does
    assert namespace["view"].name == spec.view and namespace["entity"].join_key == "drug"
    manifest = yaml.safe_load((repo.directory / "manifest.json").read_text())
    counts = manifest["counts"]
    assert (
        counts["source_rows"]
        == counts["reviews"] + counts["skipped_no_drug"] + counts["skipped_unreadable_date"]
    )
    assert manifest["stage"] == "features" and len(manifest["inputs"]) == 2


def test_a_patient_store_needs_the_key(
    fhir_recipe: Callable[..., Recipe], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MEDOPS_DEID_KEY", raising=False)
    with pytest.raises(MedopsError, match="MEDOPS_DEID_KEY is not set"):
        prepare_features(fhir_recipe(), as_of=AS_OF)


def test_every_offered_feature_has_a_type() -> None:
    assert {e: tuple(types) for e, (_, types) in ENTITIES.items()} == FEATURE_SETS


def _recipe(features: dict[str, Any] | None, source_format: str = "tsv") -> Recipe:
    sources = [{"uri": "x", "format": source_format, "role": r} for r in ("train", "test")]
    raw: dict[str, Any] = {
        "name": "r",
        "data": {"sources": sources, "columns": {"id": "i", "text": "t", "label": "l"}},
    }
    if features is not None:
        raw["features"] = features
    return build_recipe(raw)


def test_no_features_section_means_no_features() -> None:
    assert _recipe(None).features is None
    features = _recipe({"entity": "drug"}).features
    assert features is not None and features.names == FEATURE_SETS["drug"]
    assert features.online_store.type == "sqlite" and features.ttl_days is None


@pytest.mark.parametrize(
    ("features", "source_format", "message"),
    [
        ({"entity": "visit"}, "tsv", "features.entity: 'visit' is not allowed"),
        ({"entity": "drug", "feature_set": ["age_band"]}, "tsv", "'age_band' is not a drug"),
        ({"entity": "drug", "online_store": {"type": "redis"}}, "tsv", "needs it"),
        (
            {"entity": "drug", "online_store": {"connection_string": "h:1"}},
            "tsv",
            "goes with type redis",
        ),
        (
            {
                "entity": "drug",
                "online_store": {"type": "redis", "connection_string": "h:1,password=x"},
            },
            "tsv",
            "set REDIS_PASSWORD",
        ),
        ({"entity": "drug", "registry": "postgresql://u:pw@h/db"}, "tsv", "set PGPASSWORD"),
        ({"entity": "drug", "registry": "s3://bucket/registry.db"}, "tsv", "postgresql://"),
        ({"entity": "drug", "ttl_days": 0}, "tsv", "features.ttl_days"),
        ({"entity": "drug", "colour": 1}, "tsv", "features.colour: unknown key"),
        ({"entity": "patient"}, "tsv", "reads fhir, fhir-ndjson sources, not tsv"),
        ({"entity": "drug"}, "fhir", "reads tsv, csv, jsonl, parquet sources, not fhir"),
    ],
)
def test_recipe_errors_name_the_key(
    features: dict[str, Any], source_format: str, message: str
) -> None:
    with pytest.raises(RecipeError, match=message):
        _recipe(features, source_format)


def test_a_password_never_reaches_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    online = {"type": "redis", "connection_string": "h:1,password=hunter2-secret"}
    with pytest.raises(RecipeError) as error:
        _recipe({"entity": "drug", "online_store": online})
    assert "hunter2" not in str(error.value)


def test_the_categorical_features_are_the_string_typed_ones() -> None:
    strings = {n for _, types in ENTITIES.values() for n, kind in types.items() if kind == "string"}
    assert strings == CATEGORICAL_FEATURES


def test_evaluate_may_slice_by_a_categorical_feature_only() -> None:
    sources = [{"uri": "x", "format": "fhir", "role": r} for r in ("train", "test")]
    raw: dict[str, Any] = {
        "name": "r",
        "data": {"sources": sources, "columns": {"id": "i", "text": "t", "label": "l"}},
        "features": {"entity": "patient"},
        "evaluate": {"slices": ["language", "age_band", "sex"]},
    }
    assert build_recipe(raw).evaluate.slices == ["language", "age_band", "sex"]
    raw["evaluate"] = {"slices": ["conditions_before"]}
    with pytest.raises(RecipeError, match="'conditions_before' is not carried"):
        build_recipe(raw)
