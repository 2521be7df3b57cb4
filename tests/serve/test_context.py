"""A classifier trained with context features looks them up per request, by the entity id
the instance names, from the store prepare built and materialized."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from kserve.errors import InvalidInput

from medops.features.build import prepare_features
from medops.features.online import materialize
from medops.model.classifier import TextClassifier
from medops.model.side_inputs import SideInputs
from medops.recipe import build_recipe
from medops.tasks.classification.serving import ClassifierPredictor
from tests.features.conftest import write_reviews
from tests.features.test_drug_history import REVIEWS

from .conftest import CLASSES, keyword_classifier


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> ClassifierPredictor:
    directory = tmp_path_factory.mktemp("context")
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
            "features": {"entity": "drug", "feature_set": ["reviews_before"]},
            "serve": {"deidentify_input": False},
        }
    )
    materialize(prepare_features(recipe))  # as prepare does: Zoloft 5 reviews, Advil 2
    model = TextClassifier.load(keyword_classifier(directory / "model", 32))
    side = SideInputs.fit([{"reviews_before": 0}, {"reviews_before": 2}])  # mean 1, std 1
    weight = np.hstack([model.weight, np.zeros((len(CLASSES), side.width))])
    weight[CLASSES.index("Pain"), model.weight.shape[1]] = 0.5  # Pain grows with history
    model.weight, model.side = weight, side
    predictor = ClassifierPredictor(recipe, "in-process")
    predictor.attach_classifier(model, {})
    yield predictor
    predictor.stop()


def call(model: ClassifierPredictor, body: dict) -> dict:
    response, _headers = asyncio.run(model(body))
    return response


def test_each_instance_is_scored_with_its_entitys_latest_features(served):
    assert served.context is not None and served.context.key == "drug"
    text = "hello there"  # no keyword: the text alone leaves the three classes alike
    out = call(
        served,
        {
            "instances": [
                {"text": text, "drug": "Zoloft"},
                {"text": text, "drug": "Advil"},
                {"text": text},
                {"text": text, "drug": "Never reviewed"},
            ]
        },
    )
    said = [p["context"] for p in out["predictions"]]
    assert said == ["found", "found", "no id", "unknown id"]  # an unknown id is not an error
    zoloft, advil, none, unknown = (p["probabilities"] for p in out["predictions"])
    assert out["predictions"][0]["condition"] == "Pain"
    assert zoloft["Pain"] > advil["Pain"] > 0.34  # 5 earlier reviews, then 2
    # no id and an id the store does not know: both "no history", scored alike
    assert none == pytest.approx(unknown) and none["Pain"] == pytest.approx(1 / 3, abs=1e-3)


def test_an_entity_id_that_is_not_a_string_is_refused_by_name(served):
    with pytest.raises(InvalidInput, match="instance 1: 'drug' must be a non-empty string"):
        call(served, {"instances": [{"text": "a"}, {"text": "b", "drug": 42}]})


def test_a_model_with_context_but_no_store_scores_no_history(served, caplog):
    recipe = served.recipe.model_copy(update={"features": None})
    model = ClassifierPredictor(recipe, "in-process")
    inner = served._pyfunc.model
    with caplog.at_level("WARNING", logger="kserve.medops"):
        model.attach_classifier(inner, {})
    try:
        assert model.context is None and "no history" in caplog.text
        out = call(model, {"instances": [{"text": "hello there", "drug": "Zoloft"}]})
        assert out["predictions"][0]["probabilities"]["Pain"] == pytest.approx(1 / 3, abs=1e-3)
    finally:
        model.stop()
