"""Chat-template rendering and tokenisation with the loss on the assistant's answer only.

Task-independent: any causal-LM task renders conversations through the tokenizer's own
chat template, so a model is trained in the very format it is prompted with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from medops.errors import ConfigurationError

IGNORE = -100  # label of a token the loss skips (prompt, padding)


@dataclass(frozen=True)
class Tokenized:
    """One example as token ids; ``labels`` is ``IGNORE`` on every prompt token."""

    id: str
    input_ids: list[int]
    labels: list[int]

    @property
    def answer_tokens(self) -> int:
        return sum(1 for x in self.labels if x != IGNORE)


def render_prompt(tokenizer: Any, messages: Sequence[dict[str, str]]) -> str:
    """The prompt text up to where the assistant starts answering."""
    return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)


def tokenize_chat(tokenizer: Any, row_id: str, messages: list[dict[str, str]]) -> Tokenized:
    """Token ids of the whole conversation; labels only on the final assistant turn."""
    prompt = render_prompt(tokenizer, messages[:-1])
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    if not full.startswith(prompt):
        raise ConfigurationError(
            "the tokenizer's chat template renders the prompt differently with and without "
            "the answer; medops cannot tell where the answer starts"
        )
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(full[len(prompt) :], add_special_tokens=False)["input_ids"]
    return Tokenized(row_id, prompt_ids + answer_ids, [IGNORE] * len(prompt_ids) + answer_ids)
