"""The OpenAI wire format for chat completions, completions, models and errors.

Requests are lenient like OpenAI's own API: unknown fields are ignored, so any version of
the official client (which sends fields this server never heard of) keeps working. What
would silently change the answer's meaning is refused instead: ``n`` other than 1, tools,
``echo``, token-id prompts and non-text content parts.

``medops`` is this server's extension object. In a request it names the entity whose
features a model trained with a context line reads (``{"medops": {"drug": "Zoloft"}}``;
the official client sends it with ``extra_body``); in an answer it says what the store
knew of it (``{"medops": {"context": "found"}}``). Clients that do not know it ignore it.

Validation messages name the field and what is allowed, never the submitted value: the
request may carry patient narrative.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    field_validator,
    model_serializer,
)

Role = Literal["system", "developer", "user", "assistant"]
FinishReason = Literal["stop", "length"]

MAX_STOP = 4
EntityId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ChatMessage(_Request):
    """One message; ``content`` as a string or a list of ``{"type": "text"}`` parts."""

    role: Role = Field(description="developer is read as system (newer clients send it)")
    content: str = Field(description="a string, or text parts joined with newlines")
    name: str | None = None

    @field_validator("content", mode="before")
    @classmethod
    def _join_text_parts(cls, value: Any) -> Any:
        if not isinstance(value, list):
            return value
        texts = []
        for part in value:
            if not (isinstance(part, dict) and part.get("type") == "text"):
                raise ValueError('only text parts are supported: {"type": "text", "text": "..."}')
            if not isinstance(part.get("text"), str):
                raise ValueError('a text part needs a string "text"')
            texts.append(part["text"])
        return "\n".join(texts)

    def as_prompt_message(self) -> dict[str, str]:
        """The plain ``{"role", "content"}`` a chat template reads."""
        role = "system" if self.role == "developer" else self.role
        return {"role": role, "content": self.content}


class StreamOptions(_Request):
    include_usage: bool = False


class _Sampling(_Request):
    """Fields shared by chat and text completions."""

    model: str | None = Field(None, description="a served name; default: the first served")
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0.0, le=2.0, description="absent: greedy (0)")
    top_p: float | None = Field(None, ge=0.0, le=1.0)
    stop: list[str] | None = Field(None, description=f"a string or up to {MAX_STOP} strings")
    n: int | None = Field(None, description="only 1 is supported")
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    seed: int | None = None
    user: str | None = Field(None, description="accepted and ignored (never logged)")
    medops: dict[str, EntityId] | None = Field(
        None,
        description="extension: the entity id under the served model's key, "
        '{"drug": "Zoloft"}; its online features go into the prompt as the context line '
        "the model was trained with",
    )

    @field_validator("stop", mode="before")
    @classmethod
    def _stop_as_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("stop")
    @classmethod
    def _stop_limit(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and len(value) > MAX_STOP:
            raise ValueError(f"at most {MAX_STOP} stop sequences")
        return value

    @field_validator("n")
    @classmethod
    def _only_one(cls, value: int | None) -> int | None:
        if value not in (None, 1):
            raise ValueError("only n=1 is supported")
        return value

    def stop_sequences(self) -> tuple[str, ...]:
        """Stop strings as a tuple; empty strings dropped (they would stop at once)."""
        return tuple(stop for stop in self.stop or () if stop)

    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)

    def requested_max_tokens(self) -> tuple[int | None, str]:
        """The requested token budget and the field it came from (for error messages)."""
        return self.max_tokens, "max_tokens"


class ChatCompletionRequest(_Sampling):
    """``POST /openai/v1/chat/completions``."""

    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1, description="wins over max_tokens")
    tools: list[Any] | None = Field(None, description="not supported: must be absent or empty")
    functions: list[Any] | None = Field(None, description="not supported: must be absent")

    @field_validator("tools", "functions")
    @classmethod
    def _no_tools(cls, value: list[Any] | None) -> list[Any] | None:
        if value:
            raise ValueError("tool and function calling are not supported")
        return value

    def requested_max_tokens(self) -> tuple[int | None, str]:
        if self.max_completion_tokens is not None:
            return self.max_completion_tokens, "max_completion_tokens"
        return self.max_tokens, "max_tokens"


class CompletionRequest(_Sampling):
    """``POST /openai/v1/completions``: one prompt per request."""

    prompt: list[str] = Field(description="a string or a list of exactly one string")
    echo: bool | None = Field(False, description="only false is supported")
    best_of: int | None = Field(None, description="only 1 is supported")

    @field_validator("prompt", mode="before")
    @classmethod
    def _prompt_as_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, value: list[str]) -> list[str]:
        if len(value) != 1:
            raise ValueError("exactly one prompt (a string) per request")
        return value

    @field_validator("echo")
    @classmethod
    def _no_echo(cls, value: bool | None) -> bool | None:
        if value:
            raise ValueError("echo is not supported")
        return value

    @field_validator("best_of")
    @classmethod
    def _best_of_one(cls, value: int | None) -> int | None:
        if value not in (None, 1):
            raise ValueError("only best_of=1 is supported")
        return value

    def prompt_text(self) -> str:
        return self.prompt[0]


def now() -> int:
    return int(time.time())


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int

    @classmethod
    def of(cls, prompt_tokens: int, completion_tokens: int) -> Usage:
        return cls(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens,
        )


class Extension(BaseModel):
    """The ``medops`` object of an answer: ``context`` is what the online store knew of the
    request's entity (``found``, ``unknown id``, ``no id``)."""

    context: str


class _Answer(BaseModel):
    """An answer object, with ``medops`` only when there is something to say (left out, not
    null, so strict clients see exactly OpenAI's fields otherwise)."""

    medops: Extension | None = None

    @model_serializer(mode="wrap")
    def _drop_empty_extension(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        fields = handler(self)
        if fields.get("medops") is None:
            fields.pop("medops", None)
        return fields


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: FinishReason
    logprobs: None = None


class ChatCompletion(_Answer):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=now)
    model: str
    choices: list[ChatChoice]
    usage: Usage


class Delta(BaseModel):
    """A chunk's delta: absent fields are left out, as OpenAI does (the last delta is {})."""

    role: Literal["assistant"] | None = None
    content: str | None = None

    @model_serializer(mode="wrap")
    def _drop_none(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {key: value for key, value in handler(self).items() if value is not None}


class ChunkChoice(BaseModel):
    index: int = 0
    delta: Delta
    finish_reason: FinishReason | None = None
    logprobs: None = None


class ChatCompletionChunk(_Answer):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None


class TextChoice(BaseModel):
    index: int = 0
    text: str
    finish_reason: FinishReason | None = None
    logprobs: None = None


class TextCompletion(_Answer):
    """A completion, and also each streamed chunk of one (same object type, as OpenAI)."""

    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int = Field(default_factory=now)
    model: str
    choices: list[TextChoice]
    usage: Usage | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = Field(default_factory=now)
    owned_by: str = "medops"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail
