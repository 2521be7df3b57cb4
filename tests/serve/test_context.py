"""A classifier trained with context features looks them up per request, by the entity id
the instance names, from the store prepare built and materialized."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferInput, InferRequest

from medops.model.classifier import TextClassifier
from medops.model.side_inputs import SideInputs
from medops.tasks.classification.serving import ClassifierPredictor

from .conftest import CLASSES, drug_context_recipe, keyword_classifier


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> ClassifierPredictor:
    directory = tmp_path_factory.mktemp("context")
    recipe = drug_context_recipe(directory, ["reviews_before"])  # Zoloft 5 reviews, Advil 2
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


def test_v2_requests_name_their_entities_in_an_input_named_after_the_key(served):
    texts = InferInput("text", [3], "BYTES", ["hello there"] * 3)
    ids = InferInput("drug", [3], "BYTES", ["Zoloft", "", "Never reviewed"])
    response = call(served, InferRequest(served.name, [texts, ids], request_id="r1"))
    outputs = {output.name: output for output in response.outputs}
    assert list(outputs["context"].data) == ["found", "no id", "unknown id"]
    pain = np.asarray(outputs["probabilities"].data).reshape(3, -1)[:, CLASSES.index("Pain")]
    assert pain[0] > 0.34 and pain[1] == pytest.approx(pain[2]) == pytest.approx(1 / 3, abs=1e-3)
