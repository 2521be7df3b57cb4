"""The predictor against a real MLflow registry (SQLite) holding a keyword pyfunc."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from kserve.errors import InferenceError, InvalidInput
from kserve.protocol.infer_type import InferInput, InferRequest

from medops.tasks.classification.serving import ClassifierPredictor

from .conftest import CLASSES, Registry


@pytest.fixture(scope="module")
def predictor(registry: Registry) -> ClassifierPredictor:
    model = ClassifierPredictor("condition", registry.model_uri, registry.tracking_uri)
    assert model.load() is True
    return model


def call(model: ClassifierPredictor, body):
    """Go through kserve's own __call__: preprocess -> validate -> predict -> postprocess."""
    response, _headers = asyncio.run(model(body))
    return response


def test_load_by_alias_reads_classes_and_sets_ready(predictor):
    assert predictor.ready
    assert predictor.classes == CLASSES
    outputs = {o["name"]: o for o in predictor.get_output_types()}
    assert outputs["probabilities"]["shape"] == [-1, 3]


def test_load_by_version(registry):
    name = registry.recipe.registry.model_name
    model = ClassifierPredictor("condition", f"models:/{name}/1", registry.tracking_uri)
    assert model.load() and model.classes == CLASSES


def test_v1_request(predictor):
    out = call(predictor, {"instances": [{"text": "I feel sad all day"}, "my back pain"]})
    first, second = out["predictions"]
    assert first["condition"] == "Depression" and second["condition"] == "Pain"
    assert first["probabilities"] == pytest.approx({"Acne": 0.1, "Depression": 0.8, "Pain": 0.1})
    assert sum(second["probabilities"].values()) == pytest.approx(1.0)


def test_v2_request(predictor):
    texts = ["sad again", "a rash", "knee pain"]
    tensor = InferInput("text", [3], "BYTES", [t.encode() for t in texts])
    response = call(predictor, InferRequest("condition", [tensor], request_id="abc"))
    assert response.id == "abc" and response.model_name == "condition"
    labels = response.get_output_by_name("condition").as_numpy().tolist()
    assert labels == ["Depression", "Acne", "Pain"]
    probabilities = response.get_output_by_name("probabilities").as_numpy()
    assert probabilities.shape == (3, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)
    assert probabilities[0, CLASSES.index("Depression")] == pytest.approx(0.8)
    assert response.get_output_by_name("classes").as_numpy().tolist() == CLASSES


def test_bad_input_is_rejected_before_the_model(predictor):
    with pytest.raises(InvalidInput, match="instance 0 has empty text"):
        call(predictor, {"instances": [""]})


def test_model_failure_hides_the_input(predictor):
    secret = "explode: Jane Doe MRN 4412"
    with pytest.raises(InferenceError) as caught:
        call(predictor, {"instances": [secret]})
    assert "ValueError" in str(caught.value)
    assert "Jane" not in str(caught.value) and caught.value.__suppress_context__
