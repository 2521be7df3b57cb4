"""OpenAI-compatible routes over a ``TextGenerator``: ``/openai/v1/{chat/completions,
completions,models}``.

kserve 0.21 registers its own OpenAI routes only when vllm imports, and vllm cannot be
installed beside this torch, so these are the project's. They do protocol work only: the
generator de-identifies, limits, batches and redacts.

Choices that differ from api.openai.com, on purpose:
- ``max_tokens`` (or ``max_completion_tokens``) absent: the recipe's ceiling
  (``serve.limits.max_tokens``), for completions too (OpenAI's legacy default is 16).
  Above the ceiling: 422 naming the field.
- ``temperature`` absent: greedy (0), the generator's default, not OpenAI's 1: a clinical
  service should answer the same question the same way unless asked otherwise.
- Malformed JSON is a 400; a body that does not fit the schema is a 422 (as kserve's v1/v2
  routes), with the OpenAI error shape. No error ever repeats submitted values.
- A model trained with a context line reads the entity id in the request's ``medops``
  object (``{"medops": {"drug": "Zoloft"}}``) and answers what the store knew of it in
  the answer's ``medops.context`` (the whole answer, or a stream's finishing chunk).

A streamed request first waits for its first piece, so a refusal that comes when the
generator starts (a full queue: 429) is still a real HTTP status; later errors arrive as
one final ``data: {"error": ...}`` event. A client that goes away, before or during the
answer, closes the generator's iterator at once, which frees its batch slot.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import anyio
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.types import Receive, Scope, Send

from medops.recipe import ServeLimits
from medops.serve.generation import (
    EntityContext,
    Finished,
    GenerationParams,
    Refused,
    TextGenerator,
)
from medops.serve.openai.schema import (
    AssistantMessage,
    ChatChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChunkChoice,
    CompletionRequest,
    Delta,
    ErrorDetail,
    ErrorResponse,
    Extension,
    FinishReason,
    ModelCard,
    ModelList,
    TextChoice,
    TextCompletion,
    Usage,
    now,
)

# a child of kserve's logger, so lines share its handlers and format
logger = logging.getLogger("kserve.medops")

PREFIX = "/openai/v1"
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse} for status in (400, 404, 422, 429, 500)
}

T = TypeVar("T")
Item = str | Finished


class _ClientGone(Exception):
    """The client disconnected before there was anything to send."""


def openai_router(generator: TextGenerator, limits: ServeLimits) -> APIRouter:
    """The OpenAI routes under ``/openai/v1``, answering every error in OpenAI's shape."""
    router = APIRouter(prefix=PREFIX, route_class=_OpenAIRoute, tags=["openai"])

    @router.get("/models", response_model=ModelList)
    async def list_models() -> ModelList:
        return ModelList(data=[ModelCard(id=name) for name in generator.model_names()])

    @router.get("/models/{model}", response_model=ModelCard, responses=ERRORS)
    async def retrieve_model(model: str) -> ModelCard:
        return ModelCard(id=_served_model(generator, model))

    @router.post("/chat/completions", response_model=ChatCompletion, responses=ERRORS)
    async def chat_completions(body: ChatCompletionRequest, request: Request) -> Response:
        model = _served_model(generator, body.model)
        context = await generator.context(_entity(generator, body))
        messages = [message.as_prompt_message() for message in body.messages]
        prompt = await generator.chat_prompt(model, messages, context)
        shape = _ChatShape(model, context)
        return await _answer(request, generator, model, prompt, body, limits, shape)

    @router.post("/completions", response_model=TextCompletion, responses=ERRORS)
    async def completions(body: CompletionRequest, request: Request) -> Response:
        model = _served_model(generator, body.model)
        context = await generator.context(_entity(generator, body))
        prompt = await generator.text_prompt(model, body.prompt_text(), context)
        shape = _TextShape(model, context)
        return await _answer(request, generator, model, prompt, body, limits, shape)

    return router


def install_openai(app: FastAPI, generator: TextGenerator, limits: ServeLimits) -> None:
    """Add the OpenAI routes to ``app`` (kserve's ModelServer app or any FastAPI app)."""
    app.include_router(openai_router(generator, limits))


def generation_params(
    body: ChatCompletionRequest | CompletionRequest, limits: ServeLimits
) -> GenerationParams:
    """The request's sampling settings, its token budget checked against the ceiling."""
    requested, field = body.requested_max_tokens()
    if requested is not None and requested > limits.max_tokens:
        raise Refused(
            422,
            f"{field} may be at most {limits.max_tokens} on this server; ask for fewer",
            "max_tokens_too_large",
            param=field,
        )
    defaults = GenerationParams(max_tokens=limits.max_tokens)
    return GenerationParams(
        max_tokens=requested or limits.max_tokens,
        temperature=defaults.temperature if body.temperature is None else body.temperature,
        top_p=defaults.top_p if body.top_p is None else body.top_p,
        stop=body.stop_sequences(),
        seed=body.seed,
    )


def _served_model(generator: TextGenerator, requested: str | None) -> str:
    names = generator.model_names()
    if requested is None:
        return names[0]
    if requested not in names:
        raise Refused(
            404,
            f"unknown model; this server serves: {', '.join(names)} (GET {PREFIX}/models)",
            "model_not_found",
            param="model",
        )
    return requested


def _entity(
    generator: TextGenerator, body: ChatCompletionRequest | CompletionRequest
) -> str | None:
    """The entity id the request names under the model's key (None: it names none, or the
    model reads no context). Another key is refused rather than answered without context,
    so a misspelt key does not pass for "no id"."""
    key, ids = generator.context_key, body.medops or {}
    if key is None:
        return None
    if set(ids) - {key}:
        raise Refused(
            422,
            f"medops: this model reads one entity id, as medops.{key}; leave out other keys",
            "invalid_value",
            param="medops",
        )
    return ids.get(key)


async def _answer(
    request: Request,
    generator: TextGenerator,
    model: str,
    prompt: str,
    body: ChatCompletionRequest | CompletionRequest,
    limits: ServeLimits,
    shape: _Shape,
) -> Response:
    params = generation_params(body, limits)
    pieces = generator.stream(model, prompt, params)
    if not body.stream:
        try:
            finished = await _unless_gone(request, _last(pieces))
        except _ClientGone:
            return Response(status_code=499)  # nobody reads it: the client is gone
        finally:
            await _close(pieces)
        return JSONResponse(shape.whole(finished).model_dump(mode="json"))
    try:
        first = await _unless_gone(request, _first(pieces))
    except _ClientGone:
        await _close(pieces)
        return Response(status_code=499)
    except BaseException:
        await _close(pieces)
        raise
    return _EventStream(_events(pieces, first, shape, body.include_usage()), pieces)


async def _first(pieces: AsyncIterator[Item]) -> Item:
    item = await anext(pieces, None)
    if item is None:
        raise RuntimeError("the generator ended before its first piece")
    return item


async def _last(pieces: AsyncIterator[Item]) -> Finished:
    async for item in pieces:
        if isinstance(item, Finished):
            return item
    raise RuntimeError("the generator ended without a Finished")


async def _unless_gone(request: Request, work: Coroutine[Any, Any, T]) -> T:
    """``work``'s result, or ``_ClientGone`` (with ``work`` cancelled) if the client leaves
    first: a slot must not be held for an answer nobody will read."""
    task = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for pending in (task, watch):
            pending.cancel()
        # let the cancelled generator step finish before anyone closes the iterator
        await asyncio.gather(task, watch, return_exceptions=True)
    if task.cancelled():
        raise _ClientGone
    return task.result()


async def _disconnected(request: Request) -> None:
    """Return when the client disconnects (the body is read: nothing else can arrive)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _close(pieces: AsyncIterator[Item]) -> None:
    """Close the generator's iterator, even from a cancelled task: this frees its slot."""
    aclose: Callable[[], Awaitable[Any]] | None = getattr(pieces, "aclose", None)
    if aclose is not None:
        with anyio.CancelScope(shield=True):
            await aclose()


async def _events(
    pieces: AsyncIterator[Item], first: Item, shape: _Shape, include_usage: bool
) -> AsyncGenerator[str, None]:
    """Server-sent events from the first piece on; errors become one final error event."""
    try:
        opening = shape.opening()
        if opening is not None:
            yield _sse(opening)
        item: Item | None = first
        while not isinstance(item, Finished):
            if item is None:
                raise RuntimeError("the generator ended without a Finished")
            if item:
                yield _sse(shape.piece(item))
            item = await anext(pieces, None)
        yield _sse(shape.closing(item.finish_reason))
        if include_usage:
            yield _sse(shape.usage(_usage(item)))
        yield "data: [DONE]\n\n"
    except Refused as refused:
        yield _sse(_refused_body(refused))
    except Exception as error:
        _log_failure(error)
        yield _sse(_internal_body())
    finally:
        await _close(pieces)


class _EventStream(StreamingResponse):
    """SSE that always watches for the client leaving and closes its event generator
    however the response ends (done, client gone, send failed), not at garbage collection.

    Starlette stops watching ``http.disconnect`` when the server speaks ASGI 2.4 and relies
    on ``send`` failing instead, which happens only at the next piece: a generator waiting
    in a queue would hold its slot until then. Reporting 2.3 keeps the watch (it is valid
    under 2.4 too)."""

    media_type = "text/event-stream"

    def __init__(self, events: AsyncGenerator[str, None], pieces: AsyncIterator[Item]) -> None:
        super().__init__(events, headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self._events = events
        self._pieces = pieces

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        asgi = {**scope.get("asgi", {}), "spec_version": "2.3"}
        await super().__call__({**scope, "asgi": asgi}, receive, send)

    async def stream_response(self, send: Send) -> None:
        try:
            await super().stream_response(send)
        finally:
            with anyio.CancelScope(shield=True):
                await self._events.aclose()
            await _close(self._pieces)  # closing a never-started generator skips its finally


def _sse(payload: BaseModel) -> str:
    return f"data: {payload.model_dump_json()}\n\n"


def _usage(finished: Finished) -> Usage:
    return Usage.of(finished.prompt_tokens, finished.completion_tokens)


class _Shape:
    """How one endpoint spells a whole answer and its stream chunks."""

    prefix = ""

    def __init__(self, model: str, context: EntityContext | None = None) -> None:
        self.id = f"{self.prefix}{uuid.uuid4().hex}"
        self.model = model
        self.created = now()
        # said in the whole answer or a stream's finishing chunk, only for a context model
        self.medops = Extension(context=context.status) if context is not None else None

    def whole(self, finished: Finished) -> BaseModel:
        raise NotImplementedError

    def opening(self) -> BaseModel | None:
        return None

    def piece(self, text: str) -> BaseModel:
        raise NotImplementedError

    def closing(self, finish_reason: FinishReason) -> BaseModel:
        raise NotImplementedError

    def usage(self, usage: Usage) -> BaseModel:
        raise NotImplementedError


class _ChatShape(_Shape):
    prefix = "chatcmpl-"

    def whole(self, finished: Finished) -> ChatCompletion:
        choice = ChatChoice(
            message=AssistantMessage(content=finished.text), finish_reason=finished.finish_reason
        )
        return ChatCompletion(
            id=self.id,
            created=self.created,
            model=self.model,
            choices=[choice],
            usage=_usage(finished),
            medops=self.medops,
        )

    def _chunk(
        self,
        choices: list[ChunkChoice],
        usage: Usage | None = None,
        medops: Extension | None = None,
    ) -> BaseModel:
        return ChatCompletionChunk(
            id=self.id,
            created=self.created,
            model=self.model,
            choices=choices,
            usage=usage,
            medops=medops,
        )

    def opening(self) -> BaseModel:
        return self._chunk([ChunkChoice(delta=Delta(role="assistant", content=""))])

    def piece(self, text: str) -> BaseModel:
        return self._chunk([ChunkChoice(delta=Delta(content=text))])

    def closing(self, finish_reason: FinishReason) -> BaseModel:
        choice = ChunkChoice(delta=Delta(), finish_reason=finish_reason)
        return self._chunk([choice], medops=self.medops)

    def usage(self, usage: Usage) -> BaseModel:
        return self._chunk([], usage)


class _TextShape(_Shape):
    prefix = "cmpl-"

    def _completion(
        self, choices: list[TextChoice], usage: Usage | None = None, medops: Extension | None = None
    ) -> BaseModel:
        return TextCompletion(
            id=self.id,
            created=self.created,
            model=self.model,
            choices=choices,
            usage=usage,
            medops=medops,
        )

    def whole(self, finished: Finished) -> BaseModel:
        choice = TextChoice(text=finished.text, finish_reason=finished.finish_reason)
        return self._completion([choice], _usage(finished), self.medops)

    def piece(self, text: str) -> BaseModel:
        return self._completion([TextChoice(text=text)])

    def closing(self, finish_reason: FinishReason) -> BaseModel:
        choice = TextChoice(text="", finish_reason=finish_reason)
        return self._completion([choice], medops=self.medops)

    def usage(self, usage: Usage) -> BaseModel:
        return self._completion([], usage)


# ---- errors: OpenAI's {"error": {message, type, param, code}}, never the request's values


class _OpenAIRoute(APIRoute):
    """Answers validation errors, refusals and failures in OpenAI's error shape here, so the
    router needs no app-wide exception handler (the app's own 422 shape stays as it is)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as invalid:
                return _invalid_response(invalid)
            except Refused as refused:
                return _error_response(refused.status, _refused_body(refused))
            except Exception as error:
                _log_failure(error)
                return _error_response(500, _internal_body())

        return guarded


def _error_type(status: int) -> str:
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def _error_body(status: int, message: str, code: str | None, param: str | None) -> ErrorResponse:
    detail = ErrorDetail(message=message, type=_error_type(status), param=param, code=code)
    return ErrorResponse(error=detail)


def _refused_body(refused: Refused) -> ErrorResponse:
    return _error_body(refused.status, refused.message, refused.code, refused.param)


def _internal_body() -> ErrorResponse:
    return _error_body(500, "internal error while generating; see the server log", None, None)


def _error_response(status: int, body: ErrorResponse) -> JSONResponse:
    return JSONResponse(body.model_dump(mode="json"), status_code=status)


def _log_failure(error: Exception) -> None:
    # the type only: messages and tracebacks of model code may quote the prompt
    logger.error("openai route failed: %s", type(error).__name__)


def _invalid_response(invalid: RequestValidationError) -> JSONResponse:
    errors = list(invalid.errors())
    first = errors[0] if errors else {}
    if first.get("type") == "json_invalid":
        return _error_response(400, _error_body(400, "the body is not valid JSON", None, None))
    if _param(first.get("loc", ())) is None:
        message = "the body must be a JSON object (Content-Type: application/json)"
        return _error_response(400, _error_body(400, message, None, None))
    problems = "; ".join(
        f"{_param(error.get('loc', ())) or 'body'}: {_safe_message(error)}" for error in errors[:5]
    )
    body = _error_body(422, f"invalid request: {problems}", "invalid_value", _param(first["loc"]))
    return _error_response(422, body)


def _param(loc: Any) -> str | None:
    """``("body", "messages", 0, "content")`` -> ``messages[0].content``."""
    path = ""
    for part in tuple(loc)[1:] if tuple(loc)[:1] == ("body",) else tuple(loc):
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part)
    return path or None


def _safe_message(error: Any) -> str:
    """pydantic's message, unless it quotes the submitted value (a few error types do)."""
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    value = error.get("input")
    if isinstance(value, str) and len(value) >= 3 and value in message:
        return "invalid value"
    return message
