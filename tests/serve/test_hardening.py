"""The served app in-process (ASGI, no port): model control, errors, clients, the CLI.

Every request runs under ``asyncio.wait_for``; the planted patient text must never appear
in a response body or in any log line, at any level.
"""

from __future__ import annotations

import asyncio
import json
import logging
import struct
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request
from kserve.errors import NoModelReady

from medops import cli
from medops.errors import MedopsError
from medops.model.registered import MissingModelError, fetch_model
from medops.serve import server as server_module
from medops.serve.server import MODEL_CONTROL, build_app
from medops.tasks.classification.serving import ClassifierPredictor

from .conftest import CLASSES, Registry

MODEL = "condition"
SECRET = "Jane Doe MRN QX-4412-ZK"
PLANTED = ("QX-4412", "Jane Doe")
LOGGERS = ("", "kserve", "kserve.trace", "uvicorn", "uvicorn.error", "uvicorn.access", "fastapi")


class _Lines(logging.Handler):
    """Every record, formatted with its traceback, as the server's log would hold it."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@pytest.fixture
def logs() -> Iterator[_Lines]:
    """All levels of every logger the server writes through (kserve's do not propagate)."""
    handler = _Lines()
    saved = {}
    for name in LOGGERS:
        log = logging.getLogger(name)
        saved[name] = log.level
        log.setLevel(logging.DEBUG)
        log.addHandler(handler)
    try:
        yield handler
    finally:
        for name in LOGGERS:
            logging.getLogger(name).removeHandler(handler)
            logging.getLogger(name).setLevel(saved[name])


@pytest.fixture(scope="module")
def predictor(registry: Registry) -> ClassifierPredictor:
    model = ClassifierPredictor(registry.recipe, registry.model_uri, registry.tracking_uri)
    assert model.load()
    return model


@pytest.fixture(scope="module")
def app(predictor: ClassifierPredictor) -> FastAPI:
    return build_app([predictor])


def call(
    app: FastAPI, method: str, path: str, timeout_s: float = 20.0, **kw: Any
) -> httpx.Response:
    """One request through ASGI, bounded in time."""

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://served") as client:
            return await asyncio.wait_for(client.request(method, path, **kw), timeout_s)

    return asyncio.run(go())


def assert_clean(*texts: str) -> None:
    for text in texts:
        for planted in PLANTED:
            assert planted not in text


def binary_body(elements: list[bytes], header: dict | None = None) -> tuple[bytes, dict]:
    """A v2 binary request as tritonclient builds it: JSON header, then the BYTES tensor."""
    tensor = b"".join(struct.pack("<I", len(e)) + e for e in elements)
    spec = {"name": "text", "shape": [len(elements)], "datatype": "BYTES"}
    spec["parameters"] = {"binary_data_size": len(tensor)}
    head = json.dumps(header or {"id": "b1", "inputs": [spec]}).encode()
    return head + tensor, {"Inference-Header-Content-Length": str(len(head))}


def v2_body(texts: list[str]) -> dict:
    return {"inputs": [{"name": "text", "shape": [len(texts)], "datatype": "BYTES", "data": texts}]}


def conditions(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    outputs = {o["name"]: o for o in response.json()["outputs"]}
    assert outputs["classes"]["data"] == CLASSES
    return outputs["condition"]["data"]


# --- 1. model control is off the data plane; readiness is truthful ---


def test_model_control_routes_answer_404_and_the_model_keeps_serving(app: FastAPI):
    for path in (
        f"/v2/repository/models/{MODEL}/unload",
        f"/v2/repository/models/{MODEL}/load",
        "/v2/repository/index",
    ):
        assert call(app, "POST", path).status_code == 404, path
    assert conditions(call(app, "POST", f"/v2/models/{MODEL}/infer", json=v2_body(["so sad"]))) == [
        "Depression"
    ]
    assert call(app, "GET", "/v2/health/ready").json() == {"ready": True}
    assert call(app, "GET", "/v2").json()["extensions"] == []  # no repository extension
    paths = call(app, "GET", "/openapi.json").json()["paths"]
    assert paths and not [p for p in paths if p.startswith(MODEL_CONTROL)]


def test_readiness_is_false_while_the_model_is_not_loaded(
    app: FastAPI, predictor: ClassifierPredictor, monkeypatch: pytest.MonkeyPatch
):
    def no_reload() -> bool:
        raise AssertionError("a request must not load the model")

    monkeypatch.setattr(predictor, "load", no_reload)
    predictor.ready = False  # as after kserve's stop(): the model is unloaded
    try:
        assert call(app, "GET", "/v2/health/ready").status_code == 503
        assert call(app, "GET", f"/v2/models/{MODEL}/ready").status_code == 503
        assert call(app, "GET", f"/v1/models/{MODEL}").status_code == 503
        body = {"instances": ["a rash"]}
        assert call(app, "POST", f"/v1/models/{MODEL}:predict", json=body).status_code == 503
    finally:
        predictor.ready = True
    assert call(app, "GET", "/v2/health/ready").json() == {"ready": True}


def test_an_unloaded_predictor_is_not_ready_and_not_served(registry: Registry):
    model = ClassifierPredictor(registry.recipe, registry.model_uri, registry.tracking_uri)
    model.start()  # kserve calls this on every model it is given
    assert model.ready is False
    with pytest.raises(NoModelReady):
        build_app([model])


# --- 2. errors never contain request content ---


def test_binary_bytes_that_are_not_utf8_are_a_400_naming_the_element(app: FastAPI, logs: _Lines):
    body, headers = binary_body([SECRET.encode(), SECRET.encode() + b"\xff\xfe"])
    response = call(app, "POST", f"/v2/models/{MODEL}/infer", content=body, headers=headers)
    assert response.status_code == 400
    assert "input 'text': element 1 is not UTF-8" in response.json()["error"]
    assert "refused a request: InvalidInput" in logs.text  # the log is live
    assert_clean(response.text, logs.text)


def test_a_valid_binary_request_is_served(app: FastAPI):
    body, headers = binary_body([b"I feel sad", "sharp back pain \u00e9".encode()])
    response = call(app, "POST", f"/v2/models/{MODEL}/infer", content=body, headers=headers)
    assert conditions(response) == ["Depression", "Pain"]
    assert response.json()["id"] == "b1"


@pytest.mark.parametrize(
    ("length", "where"),
    [
        ("twelve", "header is not a whole number"),
        (SECRET, "header is not a whole number"),
        ("-5", "header is not a whole number"),
        ("99999", "header is 0 or longer than the body"),
        ("0", "header is 0 or longer than the body"),
    ],
)
def test_a_bad_inference_header_length_is_a_400(app: FastAPI, logs: _Lines, length, where):
    body, _ = binary_body([SECRET.encode()])
    headers = {"Inference-Header-Content-Length": length}
    response = call(app, "POST", f"/v2/models/{MODEL}/infer", content=body, headers=headers)
    assert response.status_code == 400
    assert f"Inference-Header-Content-Length {where}" in response.json()["error"]
    assert_clean(response.text, logs.text)


def test_binary_header_errors_name_the_field(app: FastAPI, logs: _Lines):
    tensor = struct.pack("<I", len(SECRET)) + SECRET.encode()
    spec = {"shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": len(tensor)}}
    cases = {
        "inputs[0].name is missing": {"inputs": [spec]},
        "inputs[0].shape must be": {"inputs": [spec | {"name": SECRET, "shape": "one"}]},
        "inputs[0].datatype is missing": {"inputs": [spec | {"name": "text", "datatype": SECRET}]},
        "no 'inputs' list": {"id": "x"},
    }
    for where, header in cases.items():
        head = json.dumps(header).encode()
        response = call(
            app,
            "POST",
            f"/v2/models/{MODEL}/infer",
            content=head + tensor,
            headers={"Inference-Header-Content-Length": str(len(head))},
        )
        assert response.status_code == 400, where
        assert where in response.json()["error"]
        assert_clean(response.text)
    truncated, headers = binary_body([SECRET.encode()])
    response = call(
        app, "POST", f"/v2/models/{MODEL}/infer", content=truncated[:-3], headers=headers
    )
    assert response.status_code == 400 and "binary_data_size runs past" in response.text
    assert_clean(response.text, logs.text)


def test_unknown_models_and_bad_json_are_answered_without_repeating_them(
    app: FastAPI, logs: _Lines
):
    # the name is in the URL path, which access and timing lines log by design (paths are
    # addresses, not content); the answer must not repeat it
    name = SECRET.replace(" ", "-")
    for response in (
        call(app, "GET", f"/v1/models/{name}"),
        call(app, "POST", f"/v1/models/{name}:predict", json={"instances": ["x"]}),
        call(app, "POST", f"/v2/models/{name}/infer", json=v2_body(["x"])),
    ):
        assert response.status_code == 404
        assert "no model of that name" in response.json()["error"]
        assert_clean(response.text)
    logs.lines.clear()
    bad = call(
        app,
        "POST",
        f"/v1/models/{MODEL}:predict",
        content=f'{{"instances": ["{SECRET}"'.encode(),
        headers={"Content-Type": "application/json"},
    )
    assert bad.status_code == 400 and "could not be read as a v1 request" in bad.text
    fp16 = {"inputs": [{"name": SECRET, "shape": [1], "datatype": "FP16", "data": [1.0]}]}
    refused = call(app, "POST", f"/v2/models/{MODEL}/infer", json=fp16)  # kserve names it
    assert refused.status_code == 400 and "FP16 data must be binary" in refused.text
    assert "refused a request: InvalidInput" in logs.text
    assert_clean(bad.text, refused.text, logs.text)


def test_an_unhandled_error_is_a_500_whose_message_is_neither_answered_nor_logged(
    predictor: ClassifierPredictor, logs: _Lines
):
    def failing_route(app: FastAPI) -> None:
        @app.post("/boom")
        async def boom(request: Request) -> None:
            raise ValueError(f"cannot handle {(await request.body()).decode()}")

    response = call(build_app([predictor], [failing_route]), "POST", "/boom", content=SECRET)
    assert response.status_code == 500
    assert response.json() == {"error": "internal error (ValueError); the server log has where"}
    assert "unhandled ValueError" in logs.text and "in boom" in logs.text  # where, not what
    assert_clean(response.text, logs.text)


# --- 3. ecosystem clients ---


def test_json_without_content_type_is_read_as_json(app: FastAPI):
    """tritonclient.http sends its JSON infer body with no Content-Type at all."""
    raw = json.dumps(v2_body(["so sad", "a rash"])).encode()
    request = httpx.Request("POST", "http://served/", content=raw)
    assert "content-type" not in request.headers  # what the request below sends
    response = call(app, "POST", f"/v2/models/{MODEL}/infer", content=raw)
    assert conditions(response) == ["Depression", "Acne"]
    v1_raw = json.dumps({"instances": ["knee pain"]}).encode()
    response = call(app, "POST", f"/v1/models/{MODEL}:predict", content=v1_raw)
    assert response.status_code == 200 and response.json()["predictions"][0]["condition"] == "Pain"
    typed = {"Content-Type": "application/json; charset=utf-8"}
    response = call(app, "POST", f"/v1/models/{MODEL}:predict", content=v1_raw, headers=typed)
    assert response.status_code == 200, response.text
    garbage = call(app, "POST", f"/v2/models/{MODEL}/infer", content=SECRET.encode())
    assert (
        garbage.status_code == 400 and "needs the Inference-Header-Content-Length" in garbage.text
    )
    assert_clean(garbage.text)


def test_served_openapi_examples_are_accepted(app: FastAPI):
    document = call(app, "GET", "/openapi.json").json()

    def example(path: str) -> Any:
        body = document["paths"][path]["post"]["requestBody"]
        return body["content"]["application/json"]["example"]

    predicted = call(
        app, "POST", f"/v1/models/{MODEL}:predict", json=example("/v1/models/{model_name}:predict")
    )
    assert predicted.status_code == 200 and predicted.json()["predictions"][0]["condition"]
    explained = call(
        app, "POST", f"/v1/models/{MODEL}:explain", json=example("/v1/models/{model_name}:explain")
    )
    assert explained.status_code == 501 and "has no explainer" in explained.json()["error"]
    infer_example = example("/v2/models/{model_name}/infer")
    assert conditions(call(app, "POST", f"/v2/models/{MODEL}/infer", json=infer_example))
    schema_example = document["components"]["schemas"]["InferenceRequest"]["example"]
    assert conditions(call(app, "POST", f"/v2/models/{MODEL}/infer", json=schema_example))


@pytest.mark.parametrize(
    "blank", ["\u200b", "\ufeff", " \u200b\t\u2060 ", "\u00ad\u200d", "\u3164", "\x00"]
)
def test_invisible_only_text_is_refused_as_empty(app: FastAPI, blank: str):
    v1 = call(app, "POST", f"/v1/models/{MODEL}:predict", json={"instances": ["a rash", blank]})
    assert v1.status_code == 400 and "instance 1 has empty text" in v1.json()["error"]
    v2 = call(app, "POST", f"/v2/models/{MODEL}/infer", json=v2_body([blank]))
    assert v2.status_code == 400 and "element 0 is empty" in v2.json()["error"]
    # visible text around an invisible character is still text
    fine = call(app, "POST", f"/v1/models/{MODEL}:predict", json={"instances": [f"sad{blank}"]})
    assert fine.status_code == 200


# --- 4. the CLI names a missing alias and the fix ---


def test_fetch_model_names_the_missing_alias_versions_and_fix(registry: Registry):
    name = registry.recipe.registry.model_name
    with pytest.raises(MissingModelError) as missing:
        fetch_model(f"models:/{name}@challenger", registry.tracking_uri)
    message = str(missing.value)
    assert isinstance(missing.value, MedopsError)
    assert f"registered model {name!r} has no alias 'challenger'" in message
    assert "its versions are 1." in message and f"--model-uri models:/{name}/1" in message
    with pytest.raises(MissingModelError, match=r"has no version 7; its versions are 1\."):
        fetch_model(f"models:/{name}/7", registry.tracking_uri)
    with pytest.raises(MissingModelError, match=r"'ghost' has no alias 'champion' and no versions"):
        fetch_model("models:/ghost@champion", registry.tracking_uri)


def test_cli_serve_without_the_alias_prints_one_line_and_exits_2(
    registry: Registry, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
):
    def never_serve(*_args: Any) -> None:
        raise AssertionError("the server must not start")

    monkeypatch.setattr(server_module.LocalModelServer, "start", never_serve)
    code = cli.main(["serve", str(registry.recipe_path), "registry.alias=challenger"])
    error = capsys.readouterr().err
    name = registry.recipe.registry.model_name
    assert code == 2
    assert error.startswith(f"medops: registered model {name!r} has no alias 'challenger'")
    assert f"--model-uri models:/{name}/1" in error and "Traceback" not in error


# --- 5. the extension hook ---


def test_an_extension_adds_routes_and_middleware_after_model_control_is_removed(
    predictor: ClassifierPredictor,
):
    seen: list[str] = []

    def extend(app: FastAPI) -> None:
        seen.extend(app.openapi()["paths"])  # the routes the app has when the hook runs
        router = APIRouter()
        router.add_api_route("/extra", lambda: {"extra": True}, methods=["GET"])
        app.include_router(router)

        @app.middleware("http")
        async def tag(request: Request, call_next: Any) -> Any:
            response = await call_next(request)
            response.headers["x-extended"] = "yes"
            return response

    app = build_app([predictor], [extend])
    assert "/v2/models/{model_name}/infer" in seen  # kserve's routes were there
    assert not [path for path in seen if path.startswith(MODEL_CONTROL)]  # control was not
    response = call(app, "GET", "/extra")
    assert response.json() == {"extra": True} and response.headers["x-extended"] == "yes"
    served = call(app, "POST", f"/v1/models/{MODEL}:predict", json={"instances": ["sad"]})
    assert served.status_code == 200 and served.headers["x-extended"] == "yes"
