"""Where a run's MLflow credentials may go, and where a tracking URI is written
(issue 22, findings 4 and 14)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from medops.launch.finetune import finetune_resource
from medops.operator.rayjob import recipe_yaml
from medops.recipe import Recipe, RecipeError, build_recipe
from medops.registry.tracking import TRACKING_ENV, redacted, tracking_uri
from tests.conftest import demo_raw

PLATFORM = "http://medops-mlflow.medops-system.svc:5000"
ATTACKER = "http://collector.example:8000"


def test_a_recipe_cannot_redirect_a_pods_credentials(
    tiny_recipe: Recipe, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The environment (what the operator set from an allowlisted field) beats the recipe."""
    recipe = build_recipe(tiny_recipe.to_dict(), [f"registry.tracking_uri={ATTACKER}"])
    monkeypatch.setenv(TRACKING_ENV, PLATFORM)
    assert tracking_uri(recipe) == PLATFORM
    monkeypatch.delenv(TRACKING_ENV)
    assert tracking_uri(recipe) == ATTACKER  # on a laptop, with nothing set, the recipe says


def test_the_operator_refuses_a_finetune_whose_recipe_names_a_tracking_server(
    finetune: dict[str, Any],
) -> None:
    attack = copy.deepcopy(finetune)
    attack["spec"]["recipe"] = {**demo_raw(), "registry": {"tracking_uri": ATTACKER}}
    with pytest.raises(RecipeError, match="spec.mlflow.trackingUri"):
        recipe_yaml(attack)


def test_the_pipeline_hands_the_tracking_server_over_in_spec_mlflow_only(
    tiny_recipe: Recipe,
) -> None:
    recipe = build_recipe(tiny_recipe.to_dict(), [f"registry.tracking_uri={PLATFORM}"])
    body = finetune_resource(recipe, "run-1", PLATFORM)
    assert body["spec"]["mlflow"]["trackingUri"] == PLATFORM
    assert "tracking_uri" not in body["spec"]["recipe"]["registry"]


def test_a_password_in_a_tracking_uri_is_refused_before_it_is_copied(
    tiny_recipe: Recipe,
) -> None:
    uri = "https://medops:hunter2-secret@mlflow.example:5000"
    with pytest.raises(RecipeError) as refused:
        build_recipe(tiny_recipe.to_dict(), [f"registry.tracking_uri={uri}"])
    assert "hunter2-secret" not in str(refused.value)
    assert "MLFLOW_TRACKING_PASSWORD" in str(refused.value)


def test_a_uri_from_the_environment_is_stored_without_its_password() -> None:
    uri = "postgresql://mlflow:hunter2-secret@db.example:5432/mlflow"
    assert redacted(uri) == "postgresql://mlflow:***@db.example:5432/mlflow"
    assert "hunter2" not in json.dumps({"tracking_uri": redacted(uri)})
    assert redacted(PLATFORM) == PLATFORM
