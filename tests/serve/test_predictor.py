"""The predictor against a real MLflow registry (SQLite) holding a keyword classifier."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from kserve.errors import InferenceError, InvalidInput
from kserve.protocol.infer_type import InferInput, InferRequest

from medops.serve.generation import Refused
from medops.tasks.classification.serving import ClassifierPredictor

from .conftest import CLASSES, Registry


@pytest.fixture(scope="module")
def predictor(registry: Registry) -> ClassifierPredictor:
    model = ClassifierPredictor(registry.recipe, registry.model_uri, registry.tracking_uri)
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
    model = ClassifierPredictor(registry.recipe, f"models:/{name}/1", registry.tracking_uri)
    assert model.load() and model.classes == CLASSES


@pytest.mark.parametrize(("choice", "dtype"), [("bf16", torch.bfloat16), ("fp32", torch.float32)])
def test_the_encoder_is_served_in_serve_dtype(registry, choice, dtype):
    recipe = registry.recipe.model_copy(
        update={"serve": registry.recipe.serve.model_copy(update={"dtype": choice})}
    )
    model = ClassifierPredictor(recipe, registry.model_uri, registry.tracking_uri)
    assert model.load()
    try:
        assert next(model._pyfunc.model.encoder.parameters()).dtype == dtype
        answer = call(model, {"instances": ["I feel sad all day", "my back pain"]})
        assert [p["condition"] for p in answer["predictions"]] == ["Depression", "Pain"]
    finally:
        model.stop()


def test_v1_request(predictor):
    out = call(predictor, {"instances": [{"text": "I feel sad all day"}, "my back pain"]})
    first, second = out["predictions"]
    assert first["condition"] == "Depression" and second["condition"] == "Pain"
    sad = first["probabilities"]
    assert list(sad) == CLASSES and sad["Acne"] == pytest.approx(sad["Pain"])
    assert sad["Depression"] > 0.5
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
    assert probabilities[0].argmax() == CLASSES.index("Depression")
    np.testing.assert_allclose(probabilities[1], 1 / 3, rtol=1e-6)  # no keyword: all alike
    assert response.get_output_by_name("classes").as_numpy().tolist() == CLASSES


def test_bad_input_is_rejected_before_the_model(predictor):
    with pytest.raises(InvalidInput, match="instance 0 has empty text"):
        call(predictor, {"instances": [""]})


def test_model_failure_hides_the_input(predictor, recording):
    secret = "explode: Jane Doe MRN 4412"
    with pytest.raises(InferenceError) as caught:
        call(predictor, {"instances": [secret]})
    assert "ValueError" in str(caught.value)
    assert "Jane" not in str(caught.value) and caught.value.__suppress_context__


# --- limits, batching and the input guard ---


class _Recording:
    """Wraps the loaded model: counts its calls and keeps the texts it was given; a text
    with "explode" fails the call, as a model that cannot score an input would."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[list[str]] = []

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        texts = frame["text"].tolist()
        self.calls.append(texts)
        for text in texts:
            if "explode" in text:
                raise ValueError(f"cannot score {text!r}")
        return self.inner.predict(frame)


@pytest.fixture()
def recording(predictor: ClassifierPredictor) -> Iterator[_Recording]:
    inner = predictor._pyfunc
    predictor._pyfunc = _Recording(inner)
    try:
        yield predictor._pyfunc
    finally:
        predictor._pyfunc = inner


def call_concurrently(model: ClassifierPredictor, bodies: list[dict]) -> list[Any]:
    async def go() -> list[Any]:
        answers = await asyncio.gather(*(model(b) for b in bodies), return_exceptions=True)
        return [a if isinstance(a, BaseException) else a[0] for a in answers]

    return asyncio.run(go())


def assert_same_answers(got: list[dict], expected: list[dict]) -> None:
    """The same classes for the same rows; probabilities equal up to float rounding (a
    batch of another size may sum a matrix product in another order)."""
    assert [[p["condition"] for p in a["predictions"]] for a in got] == [
        [p["condition"] for p in a["predictions"]] for a in expected
    ]
    for answer, wanted in zip(got, expected, strict=True):
        for row, wanted_row in zip(answer["predictions"], wanted["predictions"], strict=True):
            assert row["probabilities"] == pytest.approx(wanted_row["probabilities"], abs=1e-6)


REQUESTS = [
    ["sad", "knee pain", "a rash"],
    ["back pain"],
    ["a rash", "so sad"],
    ["pimples"],
    ["hurt pain", "sad", "sad", "rash"],
]


def test_concurrent_requests_share_one_pyfunc_call_and_keep_their_own_rows(
    predictor: ClassifierPredictor, recording: _Recording
):
    alone = [call(predictor, {"instances": texts}) for texts in REQUESTS]
    assert len(recording.calls) == len(REQUESTS)
    recording.calls.clear()
    together = call_concurrently(predictor, [{"instances": texts} for texts in REQUESTS])
    assert_same_answers(together, alone)
    assert len(recording.calls) < len(REQUESTS)  # batched: fewer model calls than requests
    assert sum(len(c) for c in recording.calls) == sum(len(r) for r in REQUESTS)


def test_an_unscorable_request_fails_alone_in_its_batch(
    predictor: ClassifierPredictor, recording: _Recording
):
    bodies = [{"instances": ["sad"]}, {"instances": ["explode"]}, {"instances": ["knee pain"]}]
    good, bad, other = call_concurrently(predictor, bodies)
    assert isinstance(bad, InferenceError) and "ValueError" in str(bad)
    assert good["predictions"][0]["condition"] == "Depression"
    assert other["predictions"][0]["condition"] == "Pain"
    assert len(recording.calls[0]) == 3  # tried together first


def test_requests_over_the_limits_are_refused_before_the_model(
    predictor: ClassifierPredictor, recording: _Recording
):
    limits = predictor.recipe.serve.limits
    with pytest.raises(Refused, match="at most 64 per request") as many:
        call(predictor, {"instances": ["sad"] * (limits.max_instances + 1)})
    with pytest.raises(Refused, match="instance 1 has 20001 characters") as long:
        call(predictor, {"instances": ["sad", "x" * (limits.max_chars + 1)]})
    assert many.value.status == long.value.status == 422
    assert recording.calls == []


def test_input_is_deidentified_as_training_was_before_the_model(
    predictor: ClassifierPredictor, recording: _Recording
):
    answer = call(predictor, {"instances": ["Jane Doe called on 03/04/2021 feeling sad"]})
    assert answer["predictions"][0]["condition"] == "Depression"
    (seen,) = recording.calls[0]
    assert "Jane" not in seen and "03/04/2021" not in seen and "[NAME]" in seen


def test_a_request_whose_client_left_while_queued_never_reaches_the_model(
    predictor: ClassifierPredictor, recording: _Recording
):
    gate = threading.Event()
    inner = recording.inner

    class _Held:
        def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
            gate.wait(10)  # the model thread is busy with the first request
            return inner.predict(frame)

    recording.inner = _Held()

    async def go() -> Any:
        first = asyncio.create_task(predictor({"instances": ["sad"]}))
        await asyncio.sleep(0.3)
        gone = asyncio.create_task(predictor({"instances": ["knee pain, client gone"]}))
        await asyncio.sleep(0.1)
        gone.cancel()  # what the disconnect middleware does when the client leaves
        await asyncio.sleep(0.1)  # the cancellation reaches the ticket
        gate.set()
        answer, _ = await first
        await asyncio.sleep(0.3)
        return answer

    answer = asyncio.run(go())
    assert answer["predictions"][0]["condition"] == "Depression"
    assert recording.calls == [["sad"]]


def test_text_past_what_the_model_reads_is_cut_before_the_guard(
    predictor: ClassifierPredictor, recording: _Recording
):
    from medops.model.encoder import CHARS_PER_TOKEN

    seen = CHARS_PER_TOKEN * predictor.recipe.model.max_length
    long = "so sad today. " * (2 * seen // 14)
    assert len(long) > seen
    answer = call(predictor, {"instances": [long]})
    assert answer["predictions"][0]["condition"] == "Depression"
    assert len(recording.calls[0][0]) <= seen
