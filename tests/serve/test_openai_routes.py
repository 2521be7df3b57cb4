"""The OpenAI routes on a real uvicorn server, called with the official ``openai`` client.

A fake ``TextGenerator`` stands in for the model: it answers a fixed sentence piece by
piece, honours ``max_tokens`` and ``stop``, and records each call (params, whether its
iterator was closed) so the tests can see what the routes asked of it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

import httpx
import openai
import pytest
import uvicorn
from fastapi import FastAPI
from openai.types.chat import ChatCompletionContentPartTextParam, ChatCompletionMessageParam
from starlette.types import ASGIApp, Receive, Scope, Send

from medops.recipe import ServeLimits
from medops.serve.generation import EntityContext, Finished, GenerationParams, Refused
from medops.serve.openai import install_openai

TOKENS = ["The ", "patient ", "should ", "rest ", "and ", "drink ", "water."]
ANSWER = "".join(TOKENS)
CEILING = 32
SECRET = "Jane Doe MRN QX-4412-ZK"  # planted: must never come back in an error or a log
TIMEOUT_S = 10.0


@dataclass
class Call:
    model: str
    prompt: str
    params: GenerationParams
    started: threading.Event = field(default_factory=threading.Event)
    closed: threading.Event = field(default_factory=threading.Event)


class FakeGenerator:
    """Models: ``med`` answers; ``busy`` is a full queue (429 at the first piece);
    ``slow`` streams until closed (no max_tokens); ``stall`` never sends a first piece;
    ``broken`` refuses mid-answer; ``crash`` (at once) and ``crash-late`` (after a piece)
    fail with the prompt in their exception message."""

    names = ("med", "busy", "slow", "stall", "broken", "crash", "crash-late")
    context_key: str | None = None  # trained without context: test_prompt_context.py

    def __init__(self) -> None:
        self.calls: list[Call] = []

    def model_names(self) -> list[str]:
        return list(self.names)

    async def context(self, entity: str | None) -> EntityContext | None:
        return None

    async def chat_prompt(
        self,
        model: str,
        messages: Sequence[dict[str, str]],
        context: EntityContext | None = None,
    ) -> str:
        self._known(model)
        return "\n".join(f"<{m['role']}>{m['content']}" for m in messages)

    async def text_prompt(
        self, model: str, prompt: str, context: EntityContext | None = None
    ) -> str:
        self._known(model)
        return prompt

    def _known(self, model: str) -> None:
        if model not in self.names:
            raise Refused(404, "unknown model", "model_not_found", param="model")

    def stream(
        self, model: str, prompt: str, params: GenerationParams
    ) -> AsyncIterator[str | Finished]:
        call = Call(model, prompt, params)
        self.calls.append(call)
        return self._pieces(call)

    def last(self, model: str) -> Call:
        return next(call for call in reversed(self.calls) if call.model == model)

    async def _pieces(self, call: Call) -> AsyncIterator[str | Finished]:
        call.started.set()
        try:
            if call.model == "busy":
                raise Refused(429, "the queue is full; retry later", "queue_full")
            if call.model == "stall":
                await asyncio.Event().wait()
            if call.model == "crash":
                raise RuntimeError(f"cannot decode {call.prompt!r}")
            tokens = itertools.cycle(TOKENS) if call.model == "slow" else iter(TOKENS)
            text, count = "", 0
            reason: Literal["stop", "length"] = "stop"
            for token in tokens:
                if count == call.params.max_tokens and call.model != "slow":
                    reason = "length"
                    break
                if call.model == "slow":
                    await asyncio.sleep(0.02)
                if call.model == "broken" and count == 2:
                    raise Refused(422, "the answer went over the output limit", "output_limit")
                if call.model == "crash-late" and count == 1:
                    raise RuntimeError(f"cannot decode {call.prompt!r}")
                cut = min((token.find(s) for s in call.params.stop if s in token), default=-1)
                piece = token if cut < 0 else token[:cut]
                text, count = text + piece, count + 1
                if piece:
                    yield piece
                if cut >= 0:
                    break
            yield Finished(text, reason, len(call.prompt.split()), count)
        finally:
            call.closed.set()


@dataclass(frozen=True)
class Served:
    port: int
    fake: FakeGenerator

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/openai/v1"


@contextmanager
def running(app: ASGIApp) -> Iterator[int]:
    """``app`` on a real uvicorn server in a thread, on a free loopback port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + TIMEOUT_S
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(timeout=TIMEOUT_S)
        sock.close()


def openai_app(fake: FakeGenerator) -> FastAPI:
    app = FastAPI()
    install_openai(app, fake, ServeLimits(max_tokens=CEILING))
    return app


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    fake = FakeGenerator()
    with running(openai_app(fake)) as port:
        yield Served(port, fake)


@pytest.fixture
def client(served: Served) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=served.base_url, api_key="x", max_retries=0, timeout=TIMEOUT_S
    ) as client:
        yield client


@pytest.fixture
def raw(served: Served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.base_url, timeout=TIMEOUT_S) as client:
        yield client


USER: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "How should I treat a mild fever?"}
]


def test_chat_answers_one_json_with_usage(client: openai.OpenAI, served: Served) -> None:
    messages: list[ChatCompletionMessageParam] = [{"role": "system", "content": "Be brief."}, *USER]
    answer = client.chat.completions.create(model="med", messages=messages)

    assert answer.object == "chat.completion" and answer.id.startswith("chatcmpl-")
    assert answer.model == "med"
    choice = answer.choices[0]
    assert (choice.message.role, choice.message.content) == ("assistant", ANSWER)
    assert choice.finish_reason == "stop"
    assert answer.usage is not None
    assert answer.usage.completion_tokens == len(TOKENS)
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + len(TOKENS)
    call = served.fake.last("med")
    assert call.params == GenerationParams(max_tokens=CEILING)  # absent: ceiling, greedy
    assert call.prompt == "<system>Be brief.\n<user>How should I treat a mild fever?"
    assert call.closed.wait(2)


def test_chat_reads_text_parts_developer_role_and_sampling(
    client: openai.OpenAI, served: Served
) -> None:
    parts: list[ChatCompletionContentPartTextParam] = [
        {"type": "text", "text": "first"},
        {"type": "text", "text": "second"},
    ]
    answer = client.chat.completions.create(
        model="med",
        messages=[
            {"role": "developer", "content": "Be brief."},
            {"role": "user", "content": parts},
        ],
        max_completion_tokens=3,
        temperature=0.7,
        top_p=0.9,
        seed=7,
        stop="never-seen",
        user="clinician-1",
        n=1,
    )

    assert answer.choices[0].message.content == "".join(TOKENS[:3])
    assert answer.choices[0].finish_reason == "length"
    call = served.fake.last("med")
    assert call.prompt == "<system>Be brief.\n<user>first\nsecond"
    assert call.params == GenerationParams(3, 0.7, 0.9, ("never-seen",), 7)


def test_chat_stop_truncates(client: openai.OpenAI) -> None:
    answer = client.chat.completions.create(model="med", messages=USER, stop=["rest", "xyz"])

    assert answer.choices[0].message.content == "The patient should "
    assert answer.choices[0].finish_reason == "stop"


def test_chat_streams_deltas_then_finish_then_usage(client: openai.OpenAI, served: Served) -> None:
    stream = client.chat.completions.create(
        model="med",
        messages=USER,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)

    assert chunks[0].choices[0].delta.role == "assistant"
    assert {chunk.id for chunk in chunks} == {chunks[0].id}
    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    with_choices = [chunk for chunk in chunks if chunk.choices]
    assert "".join(c.choices[0].delta.content or "" for c in with_choices) == ANSWER
    assert [c.choices[0].finish_reason for c in with_choices][-1] == "stop"
    assert all(c.choices[0].finish_reason is None for c in with_choices[:-1])
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == len(TOKENS)
    assert served.fake.last("med").closed.wait(2)


def test_chat_stream_without_usage_ends_with_finish(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(model="med", messages=USER, stream=True, max_tokens=2)
    )

    assert chunks[-1].choices[0].finish_reason == "length"
    assert all(chunk.usage is None for chunk in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "The patient "


def test_sse_wire_format(raw: httpx.Client) -> None:
    body = {"model": "med", "messages": USER, "stream": True}
    with raw.stream("POST", "/chat/completions", json=body) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        text = response.read().decode()

    events = text.split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    assert all(event.startswith("data: ") for event in events[:-1])
    first = json.loads(events[0].removeprefix("data: "))
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    last = json.loads(events[-3].removeprefix("data: "))
    assert last["choices"][0] == {
        "index": 0,
        "delta": {},
        "finish_reason": "stop",
        "logprobs": None,
    }


@pytest.mark.parametrize("prompt", ["Fever advice:", ["Fever advice:"]])
def test_completions_answer_one_json(
    client: openai.OpenAI, served: Served, prompt: str | list[str]
) -> None:
    answer = client.completions.create(model="med", prompt=prompt, max_tokens=4)

    assert answer.object == "text_completion" and answer.id.startswith("cmpl-")
    assert answer.choices[0].text == "".join(TOKENS[:4])
    assert answer.choices[0].finish_reason == "length"
    assert answer.usage is not None and answer.usage.completion_tokens == 4
    assert served.fake.last("med").prompt == "Fever advice:"


def test_completions_stream(client: openai.OpenAI) -> None:
    chunks = list(
        client.completions.create(
            model="med",
            prompt="Fever advice:",
            stream=True,
            stream_options={"include_usage": True},
        )
    )

    with_choices = [chunk for chunk in chunks if chunk.choices]
    assert "".join(chunk.choices[0].text for chunk in with_choices) == ANSWER
    assert with_choices[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 2


def test_models_list_and_retrieve(client: openai.OpenAI) -> None:
    models = client.models.list()

    assert [model.id for model in models] == list(FakeGenerator.names)
    assert all(model.object == "model" and model.owned_by == "medops" for model in models)
    assert client.models.retrieve("med").id == "med"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope")


@pytest.mark.parametrize("stream", [False, True])
def test_unknown_model_is_404_without_echo(client: openai.OpenAI, stream: bool) -> None:
    with pytest.raises(openai.NotFoundError) as raised:
        client.chat.completions.create(model=SECRET, messages=USER, stream=stream)

    error = raised.value.body
    assert isinstance(error, dict)
    assert (error["code"], error["param"], error["type"]) == (
        "model_not_found",
        "model",
        "invalid_request_error",
    )
    assert SECRET not in raised.value.response.text


def test_absent_model_is_the_first_served(raw: httpx.Client) -> None:
    response = raw.post("/chat/completions", json={"messages": USER})

    assert response.status_code == 200 and response.json()["model"] == "med"


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_max_tokens_over_ceiling_is_422(client: openai.OpenAI, field: str) -> None:
    with pytest.raises(openai.UnprocessableEntityError) as raised:
        client.chat.completions.create(model="med", messages=USER, extra_body={field: CEILING + 1})

    assert raised.value.body["param"] == field  # type: ignore[index]
    assert str(CEILING) in raised.value.message


@pytest.mark.parametrize("stream", [False, True])
def test_full_queue_is_429(client: openai.OpenAI, served: Served, stream: bool) -> None:
    with pytest.raises(openai.RateLimitError) as raised:
        client.chat.completions.create(model="busy", messages=USER, stream=stream)

    assert raised.value.body["code"] == "queue_full"  # type: ignore[index]
    assert served.fake.last("busy").closed.wait(2)


def test_refusal_mid_stream_is_a_final_error_event(client: openai.OpenAI, served: Served) -> None:
    stream = client.chat.completions.create(model="broken", messages=USER, stream=True)
    seen = []
    with pytest.raises(openai.APIError) as raised:
        for chunk in stream:
            seen.append(chunk.choices[0].delta.content or "")

    assert "".join(seen) == "The patient "
    assert raised.value.body["code"] == "output_limit"  # type: ignore[index]
    assert served.fake.last("broken").closed.wait(2)


class _Collect(logging.Handler):
    def __init__(self, records: list[logging.LogRecord]) -> None:
        super().__init__(logging.ERROR)
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextmanager
def route_log() -> Iterator[list[logging.LogRecord]]:
    """Records of the routes' logger, caught on the logger itself: kserve's logging setup
    (run by any ModelServer built in this process) stops ``kserve`` propagating to root."""
    records: list[logging.LogRecord] = []
    handler = _Collect(records)
    logger = logging.getLogger("kserve.medops")
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


def logged(records: list[logging.LogRecord]) -> str:
    return "\n".join(record.getMessage() for record in records)


@pytest.mark.parametrize("stream", [False, True])
def test_failure_is_500_and_logs_no_text(raw: httpx.Client, stream: bool) -> None:
    body = {"model": "crash", "messages": [{"role": "user", "content": SECRET}], "stream": stream}
    with route_log() as records:
        response = raw.post("/chat/completions", json=body)

    assert response.status_code == 500
    assert response.json()["error"]["type"] == "server_error"
    assert "RuntimeError" in logged(records)
    assert SECRET not in response.text and SECRET not in logged(records)


def test_failure_mid_stream_is_a_final_error_event(client: openai.OpenAI) -> None:
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": SECRET}]
    with route_log() as records, pytest.raises(openai.APIError) as raised:
        for _ in client.chat.completions.create(model="crash-late", messages=messages, stream=True):
            pass

    assert raised.value.body["type"] == "server_error"  # type: ignore[index]
    assert "RuntimeError" in logged(records)
    assert SECRET not in raised.value.message and SECRET not in logged(records)


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"n": 2}, "n"),
        ({"temperature": 2.5}, "temperature"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"tools": [{"type": "function", "function": {"name": SECRET}}]}, "tools"),
        ({"messages": [{"role": SECRET, "content": "hi"}]}, "messages[0].role"),
        ({"messages": [{"role": "user", "content": {"text": SECRET}}]}, "messages[0].content"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "url": SECRET}]}]},
            "messages[0].content",
        ),
        ({"messages": []}, "messages"),
        ({"max_tokens": SECRET}, "max_tokens"),
    ],
)
def test_invalid_chat_is_422_naming_the_field_not_the_value(
    raw: httpx.Client, change: dict, param: str
) -> None:
    response = raw.post("/chat/completions", json={"model": "med", "messages": USER} | change)

    assert response.status_code == 422
    error = response.json()["error"]
    assert (error["param"], error["type"]) == (param, "invalid_request_error")
    assert SECRET not in response.text


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"prompt": ["a", "b"]}, "prompt"),
        ({"prompt": [1, 2]}, "prompt[0]"),
        ({"echo": True}, "echo"),
    ],
)
def test_invalid_completion_is_422(raw: httpx.Client, change: dict, param: str) -> None:
    response = raw.post("/completions", json={"model": "med", "prompt": "x"} | change)

    assert response.status_code == 422 and response.json()["error"]["param"] == param


def test_malformed_body_is_400_without_echo(raw: httpx.Client) -> None:
    broken = raw.post(
        "/chat/completions",
        content=f'{{"messages": "{SECRET}',
        headers={"Content-Type": "application/json"},
    )
    not_json = raw.post("/chat/completions", content=SECRET)

    for response in (broken, not_json):
        assert response.status_code == 400, response.text
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}
        assert SECRET not in response.text


def test_unknown_fields_are_ignored(raw: httpx.Client) -> None:
    extra = {"logit_bias": {"50256": -100}, "metadata": {"a": "b"}, "frequency_penalty": 0.5}
    response = raw.post("/chat/completions", json={"model": "med", "messages": USER} | extra)

    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == ANSWER


def _request(port: int, body: dict) -> bytes:
    payload = json.dumps(body).encode()
    head = (
        f"POST /openai/v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


def leave_mid_answer(port: int, fake: FakeGenerator, model: str, stream: bool) -> Call:
    """Ask ``model``, close the socket once it streams (or is called), return its call."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as sock:
        sock.sendall(_request(port, {"model": model, "messages": USER, "stream": stream}))
        if model == "slow":
            received = b""
            while received.count(b"data: ") < 3:
                chunk = sock.recv(4096)
                assert chunk, "the server closed the stream"
                received += chunk
        else:
            deadline = time.monotonic() + TIMEOUT_S
            while not any(c.model == model and not c.closed.is_set() for c in fake.calls):
                assert time.monotonic() < deadline, "the generator was never called"
                time.sleep(0.01)
        call = fake.last(model)
        assert call.started.wait(TIMEOUT_S) and not call.closed.is_set()
    return call


@pytest.mark.parametrize(
    ("model", "stream"),
    [("slow", True), ("stall", True), ("stall", False)],
    ids=["mid-stream", "before-first-piece", "non-streaming"],
)
def test_client_gone_closes_the_generator(served: Served, model: str, stream: bool) -> None:
    call = leave_mid_answer(served.port, served.fake, model, stream)

    assert call.closed.wait(2), "the generator's iterator was not closed after the client left"


def test_client_gone_is_seen_under_asgi_2_4() -> None:
    """Under ASGI 2.4 starlette stops watching for disconnects and uvicorn's send to a gone
    client is a silent no-op: a stream would then run on, holding its slot."""
    fake = FakeGenerator()
    app = openai_app(fake)

    async def as_2_4(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope = {**scope, "asgi": {**scope["asgi"], "spec_version": "2.4"}}
        await app(scope, receive, send)

    with running(as_2_4) as port:
        call = leave_mid_answer(port, fake, "slow", stream=True)

        assert call.closed.wait(2)
