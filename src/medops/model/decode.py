"""Batched decoding with a KV cache, where each sequence keeps its own limits.

Why not ``model.generate``: it applies one ``max_new_tokens``, stop rule and temperature
to the whole batch and returns only at the end. A server batches unrelated requests, so
each sequence here has its own ``max_tokens``, ``stop`` strings and temperature, streams
its text as it is decoded, may be abandoned by its client, and leaves the batch (and the
KV cache) the step it finishes, so finished rows cost nothing. Greedy rows decode exactly
as an unbatched greedy ``generate`` does: prompts are left-padded with masked positions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from transformers import DynamicCache

REPLACEMENT = "\ufffd"  # what decode() shows for a multi-byte character cut in two


@dataclass(frozen=True)
class GenerationParams:
    max_tokens: int
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None


@dataclass(frozen=True)
class Finished:
    """The end of one generation: the whole (stop-truncated) text and its token counts."""

    text: str
    finish_reason: Literal["stop", "length"]
    prompt_tokens: int
    completion_tokens: int
    redactions: int = 0


def _ignore(_text: str) -> None:
    return None


def _never() -> bool:
    return False


@dataclass(eq=False)
class Sequence_:
    """One request inside the decode loop: its prompt, its limits and where text goes."""

    prompt_ids: list[int]
    params: GenerationParams
    adapter: str | None = None  # a peft adapter name; None: the first (or only) one
    emit: Callable[[str], None] = _ignore  # each new piece of text, in order
    abandoned: Callable[[], bool] = _never  # the client left: stop spending on it
    ids: list[int] = field(default_factory=list)
    sent: int = 0  # characters of the decoded text already emitted
    generator: torch.Generator | None = None

    def __post_init__(self) -> None:
        if self.params.temperature > 0:
            self.generator = torch.Generator()
            if self.params.seed is not None:
                self.generator.manual_seed(self.params.seed)
            else:
                self.generator.seed()


def _withheld(text: str, stops: tuple[str, ...]) -> int:
    """How many trailing characters could still become a stop string (not emitted yet)."""
    longest = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), longest, -1):
            if text.endswith(stop[:size]):
                longest = size
                break
    return longest


def _advance(seq: Sequence_, token: int, tokenizer: Any, eos: set[int]) -> Finished | None:
    """Add ``token`` to ``seq``, emit the text that is now final, and say if it is done."""
    if token in eos:
        return _finish(seq, tokenizer, "stop", None)
    seq.ids.append(token)
    text = tokenizer.decode(seq.ids, skip_special_tokens=True)
    if seq.params.stop:
        window = max(0, seq.sent - max(len(s) for s in seq.params.stop))
        hits = [i for i in (text.find(s, window) for s in seq.params.stop) if i >= 0]
        if hits:
            return _finish(seq, tokenizer, "stop", text[: min(hits)])
    if len(seq.ids) >= seq.params.max_tokens:
        return _finish(seq, tokenizer, "length", text)
    ready = len(text.rstrip(REPLACEMENT)) - _withheld(text, seq.params.stop)
    if ready > seq.sent:
        seq.emit(text[seq.sent : ready])
        seq.sent = ready
    return None


def _finish(
    seq: Sequence_, tokenizer: Any, reason: Literal["stop", "length"], text: str | None
) -> Finished:
    if text is None:
        text = tokenizer.decode(seq.ids, skip_special_tokens=True)
    if len(text) > seq.sent:
        seq.emit(text[seq.sent :])
        seq.sent = len(text)
    return Finished(text[: seq.sent], reason, len(seq.prompt_ids), len(seq.ids))


def _pick(logits: torch.Tensor, seqs: Sequence[Sequence_]) -> list[int]:
    """Greedy argmax per row, or a temperature/top-p sample from the row's own generator."""
    tokens = logits.argmax(dim=-1).tolist()
    for row, seq in enumerate(seqs):
        if seq.params.temperature <= 0:
            continue
        probs = torch.softmax(logits[row].float() / seq.params.temperature, dim=-1)
        if seq.params.top_p < 1.0:
            sorted_probs, order = probs.sort(descending=True)
            outside = sorted_probs.cumsum(-1) - sorted_probs > seq.params.top_p
            sorted_probs[outside] = 0.0
            probs = torch.zeros_like(probs).scatter(0, order, sorted_probs)
        tokens[row] = int(torch.multinomial(probs, 1, generator=seq.generator))
    return tokens


def decode(
    model: Any,
    tokenizer: Any,
    seqs: list[Sequence_],
    *,
    pad_id: int,
    eos: set[int],
    adapters: bool = False,
    on_finish: Callable[[Sequence_, Finished | None], None] | None = None,
) -> dict[int, Finished | None]:
    """Decode every sequence to its end; ``None`` for one whose client abandoned it.

    ``adapters``: the model is a peft model holding several LoRA adapters, and each row
    runs with its sequence's adapter (peft's mixed-batch ``adapter_names``)."""
    results: dict[int, Finished | None] = {}

    def done(index: int, outcome: Finished | None) -> None:
        results[index] = outcome
        if on_finish is not None:
            on_finish(seqs[index], outcome)

    live: list[int] = []
    for i, seq in enumerate(seqs):
        if seq.abandoned():
            done(i, None)
        else:
            live.append(i)
    if not live:
        return results
    width = max(len(seqs[i].prompt_ids) for i in live)
    ids = torch.full((len(live), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(live), width), dtype=torch.long)
    for row, i in enumerate(live):
        prompt = seqs[i].prompt_ids
        ids[row, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
        mask[row, width - len(prompt) :] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    cache = DynamicCache()
    while live:
        extra = {"adapter_names": [seqs[i].adapter for i in live]} if adapters else {}
        with torch.inference_mode():
            out = model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=positions,
                cache=cache,
                use_cache=True,
                logits_to_keep=1,  # the last position's logits only: prefill skips the rest
                **extra,
            )
        tokens = _pick(out.logits[:, -1, :], [seqs[i] for i in live])
        keep: list[int] = []
        for row, i in enumerate(live):
            if seqs[i].abandoned():
                done(i, None)
                continue
            finished = _advance(seqs[i], tokens[row], tokenizer, eos)
            if finished is not None:
                done(i, finished)
            else:
                keep.append(row)
        if not keep:
            break
        if len(keep) < len(live):
            index = torch.tensor(keep, dtype=torch.long)
            cache.batch_select_indices(index)
            mask = mask[index]
            positions = positions[index]
        live = [live[row] for row in keep]
        ids = torch.tensor([[tokens[row]] for row in keep], dtype=torch.long)
        mask = torch.cat([mask, torch.ones((len(keep), 1), dtype=torch.long)], dim=1)
        positions = positions[:, -1:] + 1
    return results
