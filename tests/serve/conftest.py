"""A real MLflow registry on SQLite holding a tiny keyword model, shared by the serve tests.

The model is logged as "models from code" (a file, not a pickle), so the server subprocess
can load it without importing anything from the tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pytest
import yaml

from medops.recipe import Recipe, build_recipe
from medops.registry.tracking import TRACKING_ENV, artifact_location, tracking_uri

CLASSES = ["Acne", "Depression", "Pain"]

MODEL_CODE = '''
import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

CLASSES = ["Acne", "Depression", "Pain"]
KEYWORDS = {"sad": "Depression", "pain": "Pain"}


class KeywordModel(PythonModel):
    """0.8 on the class named by a keyword (default Acne), 0.1 on the others."""

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        rows = []
        for text in model_input["text"]:
            if "explode" in text:
                raise ValueError(f"cannot score {text!r}")
            hit = next((c for k, c in KEYWORDS.items() if k in text.lower()), "Acne")
            rows.append({"label": hit, **{c: 0.8 if c == hit else 0.1 for c in CLASSES}})
        return pd.DataFrame(rows, columns=["label", *CLASSES])


mlflow.models.set_model(KeywordModel())
'''


@dataclass(frozen=True)
class Registry:
    recipe: Recipe
    recipe_path: Path
    tracking_uri: str
    model_uri: str  # models:/<name>@champion


def recipe_dict(output_dir: Path) -> dict:
    return {
        "name": "serve-test",
        "output_dir": str(output_dir),
        "data": {
            "sources": [{"uri": "unused.tsv", "role": "test"}],
            "columns": {"id": "", "text": "text", "label": "label"},
        },
    }


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """The store lives under the recipe's output_dir (the default tracking URI), so any
    outside store named by the environment is hidden for the session."""
    with pytest.MonkeyPatch.context() as environment:
        environment.delenv(TRACKING_ENV, raising=False)
        environment.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        yield _register(tmp_path_factory.mktemp("serve"))


def _register(root: Path) -> Registry:
    raw = recipe_dict(root / "out")
    recipe = build_recipe(raw)
    recipe_path = root / "recipe.yaml"
    recipe_path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    code = root / "keyword_model.py"
    code.write_text(MODEL_CODE, encoding="utf-8")

    uri = tracking_uri(recipe)
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment("serve-test", artifact_location(recipe))
    # log_model only uses the global tracking URI: set it for the call, then put back
    # both the global and the MLFLOW_TRACKING_URI variable it writes
    previous = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        mlflow.set_tracking_uri(uri)
        try:
            with mlflow.start_run(experiment_id=experiment):
                info = mlflow.pyfunc.log_model(
                    name="model",
                    python_model=str(code),
                    pip_requirements=["mlflow"],  # skips slow requirement inference
                    registered_model_name=recipe.registry.model_name,
                )
        finally:
            mlflow.set_tracking_uri(previous)
    client.set_registered_model_alias(
        recipe.registry.model_name, recipe.registry.alias, info.registered_model_version
    )
    model_uri = f"models:/{recipe.registry.model_name}@{recipe.registry.alias}"
    return Registry(recipe, recipe_path, uri, model_uri)
