"""Prepared conversations -> token ids with the loss on every assistant turn.

The recipe's system prompt is added here, at tokenisation, and again by evaluation and the
server, never stored in the prepared rows: one setting, used the same way everywhere.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from medops.model.chat import Tokenized, tokenize_conversation
from medops.tasks.instruct.recipe import ChatTask

Message = dict[str, str]


def with_system(messages: Sequence[Message], system_prompt: str | None) -> list[Message]:
    """The conversation with the task's system turn first, unless it brings its own."""
    turns = [dict(m) for m in messages]
    if system_prompt and (not turns or turns[0]["role"] != "system"):
        turns.insert(0, {"role": "system", "content": system_prompt})
    return turns


def prompt_and_reference(messages: Sequence[Message]) -> tuple[list[Message], str]:
    """Everything before the final assistant turn, and that turn's text (what is scored)."""
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    return list(messages[:last]), messages[last]["content"]


def token_length(tokenizer: Any, conv_id: str, messages: Sequence[Message]) -> int:
    return len(tokenize_conversation(tokenizer, conv_id, messages).input_ids)


def first_turns_that_fit(
    tokenizer: Any, conv_id: str, messages: Sequence[Message], max_length: int
) -> list[Message] | None:
    """The longest opening of the conversation that ends on an assistant turn and fits."""
    ends = [i + 1 for i, m in enumerate(messages) if m["role"] == "assistant"]
    for end in reversed(ends):
        if token_length(tokenizer, conv_id, messages[:end]) <= max_length:
            return list(messages[:end])
    return None


def build_examples(
    rows: list[dict[str, Any]], tokenizer: Any, lm: ChatTask, max_length: int
) -> tuple[list[Tokenized], Counter[str]]:
    """Tokenised conversations and what happened to each (``kept`` or ``skipped_overlong``).

    Prepare already quarantined or cut conversations over ``model.max_length``; a row is
    skipped here only when a recipe with a shorter ``max_length`` reads an older dataset.
    """
    examples: list[Tokenized] = []
    counts: Counter[str] = Counter()
    for row in rows:
        example = tokenize_conversation(
            tokenizer, row["id"], with_system(row["messages"], lm.system_prompt)
        )
        if len(example.input_ids) > max_length:
            counts["skipped_overlong"] += 1
            continue
        counts["kept"] += 1
        examples.append(example)
    return examples, counts
