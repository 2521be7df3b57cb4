"""Request limits enforced at the ASGI layer, where a body can be refused while it streams.

Pure ASGI middleware, not ``BaseHTTPMiddleware``: that one buffers streaming responses and
hides client disconnects from the handler.

- ``install_limits``: a body over ``ServeLimits.max_body_bytes`` is answered 413 before the
  app has read it: a declared ``Content-Length`` is checked before the first byte is read,
  and a chunked body is counted as it streams. The other limits (texts, characters, queue,
  tokens) need the decoded request and are enforced by the routes and the batcher.
- ``install_disconnect_cancel``: starlette keeps computing a non-streaming answer for a
  client that has gone; this cancels the handler instead, so its queued work is dropped.

Install order (the last installed is the outermost): ``install_disconnect_cancel``,
``install_limits``, then ``medops.serve.auth.install_auth`` and
``medops.serve.metrics.install_metrics``, so an unauthenticated client learns no limit and
every refusal is counted.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from medops.recipe import ServeLimits

OPENAI_PREFIX = "/openai/"


def route_path(scope: Scope) -> str:
    """The path routes match against: ``scope["path"]`` without the server's root path."""
    path: str = scope["path"]
    root = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] in ("", "/"):
        return path[len(root) :] or "/"
    return path


async def send_error(
    scope: Scope,
    send: Send,
    status: int,
    message: str,
    *,
    code: str,
    error_type: str = "invalid_request_error",
    headers: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    """A JSON error in the caller's protocol: OpenAI's shape under /openai/, KServe's elsewhere.

    ``message`` must be fixed text: it never carries request content or keys.
    """
    if route_path(scope).startswith(OPENAI_PREFIX):
        error = {"message": message, "type": error_type, "param": None, "code": code}
        body = json.dumps({"error": error}).encode()
    else:
        body = json.dumps({"error": message}).encode()
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *headers,
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class BodyTooLarge(HTTPException):
    """Raised into the app's ``receive()``; an HTTPException so FastAPI re-raises it rather
    than turning it into "error parsing the body" (400)."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"request body is larger than {max_bytes} bytes")


def _content_length(scope: Scope) -> int | None:
    """The declared body size; -1 when the header is unusable (several values, not a number)."""
    values = [value for name, value in scope["headers"] if name == b"content-length"]
    if not values:
        return None
    if len(values) > 1 or not values[0].strip().isdigit():
        return -1
    return int(values[0])


class BodyLimitMiddleware:
    """413 for a body over ``max_bytes``, declared or counted, before the app has all of it."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _refuse(self, scope: Scope, send: Send) -> None:
        # close the connection: the rest of the body is not worth reading to keep it alive
        await send_error(
            scope,
            send,
            413,
            f"request body is larger than {self.max_bytes} bytes",
            code="request_too_large",
            headers=[(b"connection", b"close")],
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared == -1:
            await send_error(
                scope, send, 400, "invalid Content-Length header", code="invalid_request"
            )
            return
        if declared is not None and declared > self.max_bytes:
            await self._refuse(scope, send)
            return

        received = 0
        exceeded = False
        started = False

        async def counted_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded and not started:
                return  # the app's answer to a refused body is replaced by the 413
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not exceeded or started:
                raise
        if exceeded and not started:
            await self._refuse(scope, send)


def install_limits(app: FastAPI, limits: ServeLimits) -> None:
    """Refuse bodies over ``limits.max_body_bytes`` with 413 (see the module docstring)."""
    app.add_middleware(BodyLimitMiddleware, max_bytes=limits.max_body_bytes)


def _has_no_body(scope: Scope) -> bool:
    """HTTP/1.1 without Content-Length or Transfer-Encoding (or with length 0) has no body."""
    names = {name for name, _ in scope["headers"]}
    if b"transfer-encoding" in names:
        return False
    return b"content-length" not in names or _content_length(scope) == 0


class _DisconnectWatch:
    """Sits between the app and the server's ``receive``/``send`` for one request.

    The app reads its body through ``receive`` as usual. Once the body is complete, one
    watcher task owns the server's ``receive`` and waits for ``http.disconnect``; the app's
    later ``receive()`` calls (StreamingResponse listening for disconnects,
    ``request.is_disconnected()``) get that same message from the watcher. A request with no
    body may never call ``receive``: the app gets its empty body from here and the watcher
    starts at once.
    """

    def __init__(self, receive: Receive, send: Send) -> None:
        self._receive = receive
        self._send = send
        self._gone: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._watcher: asyncio.Task[None] | None = None
        self._empty_body: Message | None = None
        self.handler: asyncio.Task[None] | None = None
        self.response_started = False
        self.cancelled_handler = False

    def start_without_body(self) -> None:
        self._empty_body = {"type": "http.request", "body": b"", "more_body": False}
        self._watcher = asyncio.create_task(self._watch())

    async def receive(self) -> Message:
        if self._empty_body is not None:
            message, self._empty_body = self._empty_body, None
            return message
        if self._watcher is not None or self._gone.done():
            return await asyncio.shield(self._gone)  # shielded: several callers may wait
        message = await self._receive()
        if message["type"] == "http.disconnect":
            self._hang_up(message)
        elif not message.get("more_body", False):
            self._watcher = asyncio.create_task(self._watch())
        return message

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.response_started = True
        await self._send(message)

    async def _watch(self) -> None:
        try:
            message = await self._receive()
            while message["type"] != "http.disconnect":  # a bodiless request's empty body
                message = await self._receive()
        except Exception as error:  # the app's next receive() raises it, as it would have
            if not self._gone.done():
                self._gone.set_exception(error)
            return
        self._hang_up(message)

    def _hang_up(self, message: Message) -> None:
        if not self._gone.done():
            self._gone.set_result(message)
        # uvicorn also answers http.disconnect once the response is complete: only a
        # handler that has not started answering is computing for nobody
        handler = self.handler
        if handler is not None and not handler.done() and not self.response_started:
            self.cancelled_handler = True
            handler.cancel()

    def stop(self) -> None:
        if self._watcher is not None and not self._watcher.done():
            self._watcher.cancel()


async def _run(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    """An ASGI call as a coroutine, for ``create_task``."""
    await app(scope, receive, send)


class DisconnectCancelMiddleware:
    """Cancel a handler that is still computing when its client disconnects."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        watch = _DisconnectWatch(receive, send)
        # the handler runs as its own task (in a copy of this context) so it can be
        # cancelled without cancelling the server's task, which would log an error
        handler = asyncio.create_task(_run(self.app, scope, watch.receive, watch.send))
        watch.handler = handler
        if _has_no_body(scope):
            watch.start_without_body()
        try:
            await handler  # cancelling this task (server shutdown) cancels the handler too
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if not watch.cancelled_handler or (current is not None and current.cancelling()):
                raise
        finally:
            watch.stop()


def install_disconnect_cancel(app: FastAPI) -> None:
    """Cancel non-streaming handlers whose client has gone; streaming responses are left to
    notice the disconnect themselves (see the module docstring for the install order)."""
    app.add_middleware(DisconnectCancelMiddleware)
