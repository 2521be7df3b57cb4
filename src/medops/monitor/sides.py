"""The two sides a drift report compares, reduced to what the statistics read.

A side holds de-identified inputs, answers and the answers' label values in memory only:
the report keeps lengths, counts and shares, never a row.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

from medops.evaluate.generation_metrics import normalise, parse_answer
from medops.tasks.causal_lm.examples import input_text

# the label value buckets a report may name besides the classes: free text never appears
OTHER = "(other value)"
MISSING = "(no value)"
NOT_JSON = "(no JSON answer)"
_WORD = re.compile(r"[^\W\d_]+")  # letters only: numbers (dates, ids) are no vocabulary
T = TypeVar("T")


@dataclass(frozen=True)
class Side:
    """Inputs, answers and answer categories of one side; the three lists need not align
    (the reference's answers come from evaluation, its inputs from training)."""

    texts: list[str]
    answers: list[str]
    categories: list[str]


def words(text: str) -> list[str]:
    return _WORD.findall(text.casefold())


def user_text(messages: Sequence[dict[str, str]]) -> str:
    """What the users wrote in a conversation (the system prompt is the task's, not input)."""
    return "\n\n".join(m["content"] for m in messages if m.get("role") == "user")


def without(text: str, prompt_words: Sequence[str]) -> str:
    """``text`` less the task's own prompt, which training rows lack: a turn that starts
    with the instruction is cut to what follows the prompt's text label (the instruction
    and any context line go)."""
    for instruction in prompt_words:
        if instruction and text.startswith(instruction):
            return input_text(text[len(instruction) :]).strip()
    return text.strip()


def category(answer: str, field: str, classes: Sequence[str]) -> str:
    """The answer's ``field`` as one of ``classes`` or a bucket, never as free text."""
    parsed = parse_answer(answer)
    if parsed is None:
        return NOT_JSON
    value = normalise(str(parsed.get(field) or ""))
    if not value:
        return MISSING
    return next((c for c in classes if normalise(c) == value), OTHER)


def sample(items: list[T], limit: int, seed: int) -> list[T]:
    """At most ``limit`` of ``items``, the same ones on every run (seeded)."""
    if len(items) <= limit:
        return items
    return random.Random(seed).sample(items, limit)  # noqa: S311 - reproducible, not a secret
