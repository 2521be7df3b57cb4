"""The protocol codecs alone: shapes, round trips, and errors that never echo input."""

from __future__ import annotations

import numpy as np
import pytest
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferRequest, InferResponse
from kserve.protocol.rest.v2_datamodels import InferenceRequest

from medops.serve import v1, v2

SECRET = "Jane Doe, MRN 4412, has chest pain"
CLASSES = ["Acne", "Depression", "Pain"]
PROBS = np.array([[0.1, 0.2, 0.7], [0.6, 0.3, 0.1]], dtype=np.float32)


def v2_request(inputs: list[dict]) -> InferRequest:
    """Build the request exactly as kserve's REST endpoint does from a JSON body."""
    body = InferenceRequest.model_validate({"id": "r1", "inputs": inputs})
    return InferRequest.from_inference_request(body, "condition")


def text_input(data: list, **changes) -> dict:
    return {"name": "text", "shape": [len(data)], "datatype": "BYTES", "data": data} | changes


def test_v1_decodes_both_instance_forms():
    assert v1.decode({"instances": [{"text": "a b"}, {"text": "c"}]}) == ["a b", "c"]
    assert v1.decode({"instances": ["a b", "c"]}) == ["a b", "c"]


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"inputs": [SECRET]}, "no 'instances' key"),
        ([SECRET], "not a JSON object"),
        (SECRET.encode(), "not a JSON object"),
        ({"instances": SECRET}, "non-empty list"),
        ({"instances": []}, "non-empty list"),
        ({"instances": [SECRET, "   "]}, "instance 1 has empty text"),
        ({"instances": [{"note": SECRET}]}, "instance 0 has no string text"),
        ({"instances": [{"text": 42}]}, "instance 0 has no string text"),
    ],
)
def test_v1_rejects_bad_bodies_without_echoing_them(body, where):
    with pytest.raises(InvalidInput) as caught:
        v1.decode(body)
    message = str(caught.value)
    assert v1.EXPECTED in message and where in message
    assert "Jane" not in message and "4412" not in message


def test_v1_encode_pairs_classes_with_probabilities():
    out = v1.encode(["Pain", "Acne"], CLASSES, PROBS)
    assert [p["condition"] for p in out["predictions"]] == ["Pain", "Acne"]
    first = out["predictions"][0]["probabilities"]
    assert list(first) == CLASSES
    assert first["Pain"] == pytest.approx(0.7) and first["Acne"] == pytest.approx(0.1)
    assert all(isinstance(v, float) for v in first.values())


def test_v2_decodes_text_input():
    assert v2.decode(v2_request([text_input(["a b", "c"])])) == ["a b", "c"]


@pytest.mark.parametrize(
    ("inputs", "where"),
    [
        ([text_input([SECRET], name=SECRET)], "another name"),
        ([text_input([SECRET]), text_input(["x"], name="extra")], "has 2 inputs"),
        ([], "has 0 inputs"),
        ([text_input([1.0], datatype="FP32")], "another datatype"),
        ([text_input([SECRET, "x"], shape=[1, 2])], "shape [n]"),
        ([text_input([SECRET, "x"], shape=[3])], "does not match shape"),
        ([text_input([SECRET, ""])], "element 1 is empty"),
        ([text_input([SECRET, 7])], "element 1 is not a string"),
    ],
)
def test_v2_rejects_bad_requests_without_echoing_them(inputs, where):
    with pytest.raises(InvalidInput) as caught:
        v2.decode(v2_request(inputs))
    message = str(caught.value)
    assert v2.EXPECTED in message and where in message
    assert "Jane" not in message and "4412" not in message


def test_v2_encode_round_trips_through_rest_json():
    response = v2.encode(["Pain", "Acne"], CLASSES, PROBS, model_name="condition", request_id="r1")
    body, binary_length = response.to_rest()
    assert binary_length is None  # plain JSON, readable by any client
    assert body["id"] == "r1" and body["model_name"] == "condition"
    parsed = InferResponse.from_rest(body)
    condition = parsed.get_output_by_name("condition")
    assert condition.shape == [2] and condition.data == ["Pain", "Acne"]
    probabilities = parsed.get_output_by_name("probabilities")
    assert probabilities.datatype == "FP32" and probabilities.shape == [2, 3]
    np.testing.assert_allclose(probabilities.as_numpy(), PROBS)
    assert parsed.get_output_by_name("classes").data == CLASSES


def test_v2_encode_invents_an_id_when_the_request_had_none():
    response = v2.encode(["Pain"], CLASSES, PROBS[:1], model_name="m", request_id=None)
    assert response.id  # v2 responses must carry a non-empty id


def drug_input(data: list, **changes) -> dict:
    return text_input(data, name="drug") | changes


def test_v2_entity_ids_come_from_an_input_named_after_the_key():
    request = v2_request([text_input(["a", "b", "c"]), drug_input(["Zoloft", "", " Advil "])])
    assert v2.decode(request, "drug") == ["a", "b", "c"]
    assert v2.entities(request, "drug") == ["Zoloft", None, "Advil"]
    alone = v2_request([text_input(["a", "b"])])
    assert v2.decode(alone, "drug") == ["a", "b"] and v2.entities(alone, "drug") == [None, None]
    with pytest.raises(InvalidInput, match="has 2 inputs"):  # a model without context
        v2.decode(request)


@pytest.mark.parametrize(
    ("ids", "where"),
    [
        (drug_input([SECRET]), "one element per text"),
        (drug_input([1.0, 2.0], datatype="FP32"), "input 'drug' has another datatype"),
        (drug_input([SECRET, 7]), "input 'drug': element 1 is not a string"),
        (drug_input([SECRET, "x"], name="patient_key"), "has 2 inputs"),
    ],
)
def test_v2_bad_entity_inputs_are_refused_by_name(ids, where):
    request = v2_request([text_input(["a", "b"]), ids])
    with pytest.raises(InvalidInput) as caught:
        v2.decode(request, "drug")
        v2.entities(request, "drug")
    message = str(caught.value)
    assert "optionally a BYTES input 'drug'" in message and where in message
    assert "Jane" not in message and "4412" not in message


def test_v2_encode_says_the_context_per_text():
    response = v2.encode(
        ["Pain", "Acne"],
        CLASSES,
        PROBS,
        model_name="m",
        request_id="r1",
        context=["found", "unknown id"],
    )
    parsed = InferResponse.from_rest(response.to_rest()[0])
    assert parsed.get_output_by_name("context").data == ["found", "unknown id"]
    plain = v2.encode(["Pain"], CLASSES, PROBS[:1], model_name="m", request_id="r1")
    assert [output.name for output in plain.outputs] == ["condition", "probabilities", "classes"]
