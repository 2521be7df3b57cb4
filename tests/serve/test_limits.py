"""Body size limit (413 while the body streams) and cancelling handlers of departed clients.

Disconnects are made real: a uvicorn server on 127.0.0.1 in the test's event loop and a
raw socket that the test closes, so the server's own ``http.disconnect`` is what the
middleware sees.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn
from fastapi import BackgroundTasks, FastAPI, Request
from fastapi.responses import StreamingResponse
from prometheus_client import REGISTRY
from pydantic import BaseModel
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from medops.recipe import ServeLimits
from medops.serve.auth import KeyRing, hash_key, install_auth
from medops.serve.limits import (
    BodyLimitMiddleware,
    install_disconnect_cancel,
    install_limits,
)
from medops.serve.metrics import install_metrics

MAX = 1024
SECRET = "Jane Doe MRN QX-4412-ZK"
KEY = "medops_limits-test-key"


class Note(BaseModel):
    text: str


def limited_app(entered: list[str]) -> FastAPI:
    app = FastAPI()

    @app.post("/echo")
    async def echo(request: Request) -> Response:
        entered.append("echo")
        body = await request.body()
        entered.append("echo read")
        return Response(body)

    @app.post("/openai/v1/echo")
    async def openai_echo(request: Request) -> Response:
        return Response(await request.body())

    @app.post("/note")
    async def note(body: Note) -> dict[str, int]:
        entered.append("note")
        return {"chars": len(body.text)}

    @app.post("/swallow")
    async def swallow(request: Request) -> JSONResponse:
        try:
            await request.body()
        except Exception:
            entered.append("swallowed")
        return JSONResponse({"ok": True})

    install_limits(app, ServeLimits(max_body_bytes=MAX))
    return app


def asgi_client(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(transport=transport, base_url="http://test", timeout=5.0)


@pytest.mark.asyncio
async def test_body_at_the_limit_passes_one_byte_over_is_413_unread() -> None:
    entered: list[str] = []
    async with asgi_client(limited_app(entered)) as http:
        at_limit = await http.post("/echo", content=b"x" * MAX)
        assert at_limit.status_code == 200 and len(at_limit.content) == MAX
        entered.clear()
        over = await http.post("/echo", content=(SECRET * 100).encode()[: MAX + 1])
    assert over.status_code == 413
    assert over.json() == {"error": f"request body is larger than {MAX} bytes"}
    assert over.headers["connection"] == "close"
    assert "Jane" not in over.text
    assert entered == []  # refused on Content-Length: the handler never ran


@pytest.mark.asyncio
async def test_chunked_body_is_refused_while_it_streams() -> None:
    entered: list[str] = []
    pulled = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal pulled
        for _ in range(100):
            pulled += 1
            yield b"y" * 256

    async with asgi_client(limited_app(entered)) as http:
        response = await http.post("/echo", content=chunks())
    assert response.status_code == 413
    assert response.json()["error"] == f"request body is larger than {MAX} bytes"
    assert pulled <= 6, "the body was read far past the limit"
    assert entered == ["echo"]  # the handler started reading and never got the body


@pytest.mark.asyncio
async def test_fastapi_body_model_gets_413_not_400_and_openai_shape_under_openai() -> None:
    entered: list[str] = []

    async def note_chunks() -> AsyncIterator[bytes]:
        yield b'{"text": "'
        for _ in range(20):
            yield b"z" * 200
        yield b'"}'

    async with asgi_client(limited_app(entered)) as http:
        note = await http.post("/note", content=note_chunks())
        openai = await http.post("/openai/v1/echo", content=b"{" * (MAX + 10))
    assert note.status_code == 413
    assert entered == []
    assert openai.status_code == 413
    error = openai.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == "request_too_large"


@pytest.mark.asyncio
async def test_a_handler_that_swallows_the_refusal_still_answers_413() -> None:
    entered: list[str] = []

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"w" * 512

    async with asgi_client(limited_app(entered)) as http:
        response = await http.post("/swallow", content=chunks())
    assert entered == ["swallowed"]
    assert response.status_code == 413


@pytest.mark.asyncio
async def test_unusable_content_length_is_400() -> None:
    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError("the app must not run")

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    for values in ([b"abc"], [b"10", b"10"], [b"-5"]):
        sent.clear()
        scope = {
            "type": "http",
            "path": "/echo",
            "root_path": "",
            "headers": [(b"content-length", v) for v in values],
        }
        await BodyLimitMiddleware(inner, MAX)(scope, receive, send)
        assert sent[0]["status"] == 400, values


# --- disconnects, on a real server ---------------------------------------------------


class Events:
    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.cancelled = asyncio.Event()
        self.finished = asyncio.Event()
        self.received: list[str] = []
        self.body_bytes = 0


class RawStream:
    """Reads its (empty) body, answers at once, then waits for the disconnect through its
    own receive()."""

    def __init__(self, events: Events) -> None:
        self.events = events

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert (await receive())["type"] == "http.request"
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first\n", "more_body": True})
        self.events.started.set()
        try:
            message = await receive()
        except asyncio.CancelledError:
            self.events.received.append("cancelled")
            raise
        self.events.received.append(message["type"])


def disconnect_app(events: Events) -> FastAPI:
    app = FastAPI()

    @app.get("/slow")
    async def slow() -> dict[str, str]:
        events.started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            events.cancelled.set()
            raise
        return {"done": "late"}

    @app.post("/slow-body")
    async def slow_body(request: Request) -> dict[str, str]:
        events.body_bytes = len(await request.body())
        events.started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            events.cancelled.set()
            raise
        return {"done": "late"}

    @app.post("/quick")
    async def quick(request: Request, background: BackgroundTasks) -> dict[str, int]:
        body = await request.body()
        await asyncio.sleep(0.05)

        async def after() -> None:
            await asyncio.sleep(0.1)
            events.finished.set()

        background.add_task(after)
        return {"bytes": len(body)}

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def ticks() -> AsyncIterator[bytes]:
            events.started.set()
            try:
                while True:
                    yield b"tick\n"
                    await asyncio.sleep(0.05)
            finally:
                events.finished.set()

        return StreamingResponse(ticks(), media_type="text/plain")

    # an ASGI app, not a function: starlette hands it scope, receive and send as they are
    app.router.routes.append(Route("/raw-stream", RawStream(events)))
    install_disconnect_cancel(app)
    return app


@contextlib.asynccontextmanager
async def serving(app: FastAPI, http: str = "httptools") -> AsyncIterator[int]:
    """uvicorn on 127.0.0.1, a free port, in this event loop; yields the port.

    httptools is what kserve's server picks ("auto"); h11 is uvicorn's other parser.
    """
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, lifespan="off", log_level="warning", http=http
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(10):
            while not server.started:
                assert not task.done(), "uvicorn did not start"
                await asyncio.sleep(0.02)
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


@contextlib.asynccontextmanager
async def connection(port: int, request: bytes) -> AsyncIterator[asyncio.StreamReader]:
    """A raw client socket that has sent ``request``; closing it is the disconnect."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        yield reader
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def read_until(reader: asyncio.StreamReader, marker: bytes, count: int = 1) -> bytes:
    seen = b""
    async with asyncio.timeout(5):
        while seen.count(marker) < count:
            chunk = await reader.read(1024)
            assert chunk, "the server closed the connection"
            seen += chunk
    return seen


@pytest.mark.asyncio
@pytest.mark.parametrize("http", ["httptools", "h11"])
async def test_disconnect_cancels_a_computing_handler_without_body(http: str) -> None:
    events = Events()
    async with serving(disconnect_app(events), http) as port:
        async with connection(port, b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n"):
            await asyncio.wait_for(events.started.wait(), 5)
        await asyncio.wait_for(events.cancelled.wait(), 2)


def slow_body_request(body: bytes, chunked: bool) -> bytes:
    if not chunked:
        head = b"POST /slow-body HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n"
        return head % len(body) + body
    pieces = [body[i : i + 1000] for i in range(0, len(body), 1000)]
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces)
    head = b"POST /slow-body HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
    return head + chunks + b"0\r\n\r\n"


@pytest.mark.asyncio
@pytest.mark.parametrize(("http", "chunked"), [("httptools", False), ("h11", True)])
async def test_disconnect_cancels_after_the_body_was_read(http: str, chunked: bool) -> None:
    events = Events()
    async with serving(disconnect_app(events), http) as port:
        async with connection(port, slow_body_request(b"b" * 5000, chunked)):
            await asyncio.wait_for(events.started.wait(), 5)
            assert events.body_bytes == 5000  # the app read its whole body through the watch
        await asyncio.wait_for(events.cancelled.wait(), 2)


@pytest.mark.asyncio
async def test_streaming_response_streams_and_still_sees_the_disconnect() -> None:
    events = Events()
    async with serving(disconnect_app(events)) as port:
        async with connection(port, b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n") as reader:
            seen = await read_until(reader, b"tick", count=3)
            assert b"200 OK" in seen
            assert not events.finished.is_set()
        await asyncio.wait_for(events.finished.wait(), 2)


@pytest.mark.asyncio
@pytest.mark.parametrize("http", ["httptools", "h11"])
async def test_after_the_response_started_the_disconnect_is_handed_to_the_app(http: str) -> None:
    events = Events()
    async with serving(disconnect_app(events), http) as port:
        request = b"GET /raw-stream HTTP/1.1\r\nHost: t\r\n\r\n"
        async with connection(port, request) as reader:
            await read_until(reader, b"first")
            await asyncio.sleep(0.1)  # the watcher is listening by now
            assert events.received == []
        async with asyncio.timeout(2):
            while not events.received:
                await asyncio.sleep(0.01)
    assert events.received == ["http.disconnect"]  # not cancelled: it had answered


@pytest.mark.asyncio
async def test_connected_clients_get_answers_and_background_tasks_run() -> None:
    events = Events()
    async with serving(disconnect_app(events)) as port:
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base, timeout=5.0) as http:
            for size in (0, 10, 70_000):  # one keep-alive connection, several requests
                response = await http.post("/quick", content=b"q" * size)
                assert response.json() == {"bytes": size}
        await asyncio.wait_for(events.finished.wait(), 2)
    assert not events.cancelled.is_set()


@pytest.mark.asyncio
async def test_the_documented_stack_refuses_early_cancels_and_counts() -> None:
    """disconnect_cancel, limits, auth, metrics: installed in that order, as in serving."""
    events = Events()
    app = disconnect_app(events)  # installs disconnect_cancel
    install_limits(app, ServeLimits(max_body_bytes=MAX))
    install_auth(app, KeyRing({"ci": hash_key(KEY)}))
    install_metrics(app)
    auth = b"Authorization: Bearer " + KEY.encode() + b"\r\n"
    closed = REGISTRY.get_sample_value(
        "medops_http_errors_total", {"route": "/slow", "code": "499"}
    )
    async with serving(app) as port:
        # the body is never sent: the declared length alone gets the answer
        head = b"POST /slow-body HTTP/1.1\r\nHost: t\r\n" + auth + b"Content-Length: 99999\r\n\r\n"
        async with connection(port, head) as reader:
            assert (await read_until(reader, b"\r\n\r\n")).startswith(b"HTTP/1.1 413")
        # an unauthenticated client learns no limit
        async with connection(port, head.replace(auth, b"")) as reader:
            assert (await read_until(reader, b"\r\n\r\n")).startswith(b"HTTP/1.1 401")
        async with connection(port, b"GET /slow HTTP/1.1\r\nHost: t\r\n" + auth + b"\r\n"):
            await asyncio.wait_for(events.started.wait(), 5)
        await asyncio.wait_for(events.cancelled.wait(), 2)
    after = REGISTRY.get_sample_value("medops_http_errors_total", {"route": "/slow", "code": "499"})
    assert (after or 0.0) == (closed or 0.0) + 1
