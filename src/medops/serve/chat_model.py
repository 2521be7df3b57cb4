"""A chat model served to many clients at once: the ``TextGenerator`` every protocol uses.

Requests are checked against the limits before any decoding, de-identified by the guard,
queued (429 when the queue is full) and decoded together by one model thread
(``medops.model.decode``). One base model in memory may carry several LoRA adapters (a
champion and a challenger): a request's ``model`` picks its adapter, row by row, inside
one batch. Streams are redacted segment by segment before they leave. With a recorder
(``serve.review_queue``), each answered chat is handed over as de-identified turns and the
released answer, for clinician review. A model trained with a context line (``features:``)
gets it per request from the online store, by the entity id the request names.
"""

from __future__ import annotations

import asyncio
import logging
import time
import unicodedata
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any, Protocol

from medops.model.chat import render_prompt
from medops.model.decode import Finished, GenerationParams, Sequence_, decode
from medops.recipe import Batching, ServeLimits
from medops.serve import metrics
from medops.serve.batcher import BatchQueue, Ticket, start_worker
from medops.serve.generation import EntityContext, Refused
from medops.serve.guard import Guard

logger = logging.getLogger("kserve.medops")
# (served name, de-identified turns, released answer) -> stored (serve.review_queue)
Recorder = Callable[[str, list[dict[str, str]], str], None]
ASKED_KEPT = 4096  # prompts awaiting their answer; older ones are forgotten unrecorded


class ContextLines(Protocol):
    """An entity's online features as the context line training wrote (the task supplies
    it: ``medops.tasks.causal_lm.serving.PromptContext``); a blocking store lookup."""

    key: str  # how a request names the entity

    def __call__(self, entity: str | None) -> EntityContext: ...


@dataclass(eq=False)
class _Job:
    seq: Sequence_
    deliver: Callable[[object], None]  # thread-safe: hands a piece, Finished or error over


class ServedLM:
    """Serves ``names`` (name -> peft adapter name, or None for the plain model)."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        names: dict[str, str | None],
        guard: Guard,
        limits: ServeLimits,
        batching: Batching,
        system_prompt: str | None = None,
        recorder: Recorder | None = None,
        context: ContextLines | None = None,
    ) -> None:
        if not names:
            raise ValueError("ServedLM needs at least one served name")
        self.model = model
        self.tokenizer = tokenizer
        self.names = names
        self.guard = guard
        self.limits = limits
        self.system_prompt = system_prompt  # the task's, before any caller system text
        self._context = context
        self.context_key = context.key if context is not None else None
        # serve.review_queue: chat prompt -> (served name, de-identified turns) until answered
        self.recorder = recorder
        self._asked: OrderedDict[str, tuple[str, list[dict[str, str]]]] = OrderedDict()
        self._record_thread = ThreadPoolExecutor(1, thread_name_prefix="medops-review-queue")
        self.adapters = any(adapter is not None for adapter in names.values())
        self.eos = {int(t) for t in _as_list(tokenizer.eos_token_id)}
        self.pad_id = int(
            tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self.eos)
        )
        self.queue: BatchQueue[_Job] = BatchQueue(
            "generate", limits.max_queue, batching.max_batch_size, batching.max_wait_ms
        )
        start_worker(self.queue, self._decode)
        self._guard_thread = ThreadPoolExecutor(1, thread_name_prefix="medops-guard")

    # --- TextGenerator ---------------------------------------------------------------
    def model_names(self) -> list[str]:
        return list(self.names)

    async def context(self, entity: str | None) -> EntityContext | None:
        if self._context is None:
            return None
        # a store lookup (Redis or SQLite) off the event loop
        return await asyncio.to_thread(self._context, entity)

    async def chat_prompt(
        self,
        model: str,
        messages: Sequence[dict[str, str]],
        context: EntityContext | None = None,
    ) -> str:
        self._served(model)
        for i, message in enumerate(messages):
            self._check_chars(message.get("content", ""), f"messages[{i}].content")
        if not any(m.get("role") == "user" and _visible(m.get("content", "")) for m in messages):
            raise Refused(
                422,
                "the conversation has no user message with text to answer",
                "invalid_request",
                "messages",
            )
        cleaned = await self._clean([m.get("content", "") for m in messages])
        turns = [{"role": m["role"], "content": c} for m, c in zip(messages, cleaned, strict=True)]
        if context is not None:
            turns = _with_context(turns, context)
        prompt = render_prompt(self.tokenizer, _with_task_system(turns, self.system_prompt))
        if self.recorder is not None:
            self._asked[prompt] = (model, turns)
            while len(self._asked) > ASKED_KEPT:
                self._asked.popitem(last=False)
        return prompt

    async def text_prompt(
        self, model: str, prompt: str, context: EntityContext | None = None
    ) -> str:
        self._served(model)
        self._check_chars(prompt, "prompt")
        if not _visible(prompt):
            raise Refused(422, "the prompt has no text", "invalid_request", "prompt")
        cleaned = (await self._clean([prompt]))[0]
        return cleaned if context is None else context.place(cleaned)

    async def stream(
        self, model: str, prompt: str, params: GenerationParams
    ) -> AsyncIterator[str | Finished]:
        adapter = self._served(model)
        if params.max_tokens > self.limits.max_tokens:
            raise Refused(
                422,
                f"max_tokens may be at most {self.limits.max_tokens} (serve.limits.max_tokens)",
                "invalid_request",
                "max_tokens",
            )
        ids = self.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        if len(ids) > self.limits.max_prompt_tokens:
            raise Refused(
                422,
                f"the prompt has {len(ids)} tokens; at most {self.limits.max_prompt_tokens} "
                "are accepted (serve.limits.max_prompt_tokens): shorten it",
                "context_length_exceeded",
                "messages",
            )
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue[object] = asyncio.Queue()

        def deliver(item: object) -> None:
            loop.call_soon_threadsafe(pieces.put_nowait, item)

        seq = Sequence_(ids, params, adapter=adapter, emit=deliver)
        ticket = self.queue.put(_Job(seq, deliver))
        seq.abandoned = lambda: ticket.abandoned
        async for item in self._relay(ticket, pieces):
            if isinstance(item, Finished):
                self._record(prompt, item.text)
            yield item

    # --- internals -------------------------------------------------------------------
    def _record(self, prompt: str, answer: str) -> None:
        """Queue a finished chat for review, off the event loop; a failure costs the record,
        never the answer (logged by type only: the text may be patient text)."""
        asked = self._asked.pop(prompt, None)
        if self.recorder is None or asked is None:
            return
        recorder, (model, turns) = self.recorder, asked

        def write() -> None:
            try:
                recorder(model, turns, answer)
            except Exception as error:
                logger.warning("review queue: not recorded (%s)", type(error).__name__)

        self._record_thread.submit(write)

    async def _clean(self, texts: list[str]) -> list[str]:
        """The guard's de-identification on its own thread: spaCy never blocks the loop."""
        if not self.guard.inputs:
            return texts
        return await asyncio.get_running_loop().run_in_executor(
            self._guard_thread, self.guard.clean, texts
        )

    async def _relay(
        self, ticket: Ticket[_Job], pieces: asyncio.Queue[object]
    ) -> AsyncIterator[str | Finished]:
        """Pieces from the model thread, redacted; abandoning the ticket when cut short."""
        started = time.monotonic()
        redactor = self.guard.stream()
        first = True
        try:
            while True:
                item = await pieces.get()
                if isinstance(item, BaseException):
                    raise item
                if isinstance(item, Finished):
                    tail = redactor.flush()
                    if tail:
                        yield tail
                    metrics.observe_generation(item.completion_tokens, time.monotonic() - started)
                    yield replace(item, text=redactor.text, redactions=redactor.redactions)
                    return
                released = redactor.feed(str(item))
                if released:
                    if first:
                        metrics.observe_first_token(time.monotonic() - started)
                        first = False
                    yield released
        finally:
            ticket.abandoned = True  # no-op once finished; frees the slot otherwise

    def _decode(self, batch: list[Ticket[_Job]]) -> None:
        jobs = {id(t.item.seq): t.item for t in batch}

        def finished(seq: Sequence_, outcome: Finished | None) -> None:
            if outcome is not None:
                jobs[id(seq)].deliver(outcome)

        try:
            decode(
                self.model,
                self.tokenizer,
                [t.item.seq for t in batch],
                pad_id=self.pad_id,
                eos=self.eos,
                adapters=self.adapters,
                on_finish=finished,
            )
        except Exception as error:
            for ticket in batch:
                ticket.item.deliver(RuntimeError(f"generation failed ({type(error).__name__})"))
            raise
        for ticket in batch:
            ticket.future.set_result(None)

    def _served(self, model: str) -> str | None:
        if model not in self.names:
            raise Refused(
                404,
                f"the requested model is not served here; use one of: {', '.join(self.names)}",
                "model_not_found",
                "model",
            )
        return self.names[model]

    def _check_chars(self, text: str, where: str) -> None:
        if len(text) > self.limits.max_chars:
            raise Refused(
                422,
                f"{where} has {len(text)} characters; at most {self.limits.max_chars} are "
                "accepted (serve.limits.max_chars)",
                "invalid_request",
                where,
            )


def _with_task_system(turns: list[dict[str, str]], system: str | None) -> list[dict[str, str]]:
    """The task's system prompt first, as the model was trained; a caller's own system
    text follows it in the same turn rather than replacing it."""
    if not system:
        return turns
    if turns and turns[0]["role"] == "system":
        return [{"role": "system", "content": f"{system}\n\n{turns[0]['content']}"}, *turns[1:]]
    return [{"role": "system", "content": system}, *turns]


def _with_context(turns: list[dict[str, str]], context: EntityContext) -> list[dict[str, str]]:
    """The last user turn (the one the model answers) with the context line placed in it."""
    last = max(i for i, turn in enumerate(turns) if turn["role"] == "user")
    placed = {"role": "user", "content": context.place(turns[last]["content"])}
    return [*turns[:last], placed, *turns[last + 1 :]]


def _visible(text: str) -> bool:
    """True when ``text`` has a character other than whitespace or format characters."""
    return any(not ch.isspace() and unicodedata.category(ch) != "Cf" for ch in text)


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]
