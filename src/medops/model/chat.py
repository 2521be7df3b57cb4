"""Chat-template rendering and tokenisation with the loss on the assistant's answers only.

Task-independent: any causal-LM task renders conversations through the tokenizer's own
chat template, so a model is trained in the very format it is prompted with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from medops.errors import ConfigurationError, DataError

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


def _render(tokenizer: Any, messages: Sequence[dict[str, str]]) -> str:
    return tokenizer.apply_chat_template(list(messages), tokenize=False)


def _tail(done: str, text: str) -> str:
    """What ``text`` adds after ``done``; the template must only ever append."""
    if not text.startswith(done):
        raise ConfigurationError(
            "the tokenizer's chat template renders the conversation so far differently once "
            "another turn follows (the prompt with and without its answer, or earlier answers); "
            "medops cannot tell where an answer starts"
        )
    return text[len(done) :]


def _tokenize(
    tokenizer: Any, example_id: str, messages: Sequence[dict[str, str]], answers: Sequence[int]
) -> Tokenized:
    """Token ids with labels on the messages at ``answers`` (ascending indices) only.

    The rendering is cut where each answer starts and ends, and the pieces are tokenised
    one after another, so the ids concatenate and each token falls on one side of a cut.
    """
    input_ids: list[int] = []
    labels: list[int] = []

    def add(text: str, trained: bool) -> None:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        input_ids.extend(ids)
        labels.extend(ids if trained else [IGNORE] * len(ids))

    done = ""
    for i in answers:
        prompt = render_prompt(tokenizer, messages[:i])
        full = _render(tokenizer, messages[: i + 1])
        add(_tail(done, prompt), False)
        add(_tail(prompt, full), True)
        done = full
    if answers[-1] < len(messages) - 1:  # turns after the last answer are prompt
        add(_tail(done, _render(tokenizer, messages)), False)
    return Tokenized(example_id, input_ids, labels)


def tokenize_chat(tokenizer: Any, row_id: str, messages: list[dict[str, str]]) -> Tokenized:
    """Token ids of the whole conversation; labels only on the final assistant turn."""
    return _tokenize(tokenizer, row_id, messages, [len(messages) - 1])


def tokenize_conversation(
    tokenizer: Any, conv_id: str, messages: Sequence[dict[str, str]]
) -> Tokenized:
    """Token ids of a multi-turn conversation with the loss on every assistant turn.

    Each assistant turn is labelled from its content through the end-of-turn text the
    template emits after it (so the model learns to stop); system and user turns and the
    assistant header that opens each answer are ``IGNORE``: the model learns to answer, not
    to imitate the user.
    """
    answers = [i for i, message in enumerate(messages) if message["role"] == "assistant"]
    if not answers:
        raise DataError(f"conversation {conv_id}: no assistant turn to train on")
    return _tokenize(tokenizer, conv_id, messages, answers)
