"""Prepared rows -> chat examples -> token ids with the loss on the answer only.

The extraction task asks the model for JSON built from a row's own fields (the label and
``data.columns.extra`` values), so the targets come from the data, never from a person
reading the text. Rendering goes through the tokenizer's chat template: the model is
trained in the very format it is prompted with at inference.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from typing import Any

from medops.errors import MedopsError
from medops.model.chat import Tokenized, tokenize_chat
from medops.privacy.canaries import Conversation
from medops.tasks.causal_lm.recipe import LanguageTask, TargetField


class TargetError(MedopsError, ValueError):
    """A row whose target cannot be built; names the row id and field, never the text."""


def _field_value(row: dict[str, Any], target: TargetField) -> str:
    raw = row["label"] if target.source == "label" else row.get("fields", {}).get(target.source)
    if raw is None or str(raw).strip() == "":
        raise TargetError(f"row {row['id']}: field {target.source!r} is empty")
    if target.bins is None:
        return str(raw).strip()
    try:
        number = float(raw)
    except ValueError:
        raise TargetError(f"row {row['id']}: field {target.source!r} is not a number") from None
    for name, (low, high) in target.bins.items():
        if low <= number <= high:
            return name
    raise TargetError(f"row {row['id']}: field {target.source!r} = {number} is in no bin")


def target(row: dict[str, Any], lm: LanguageTask) -> dict[str, str]:
    """The JSON object the model should answer for ``row``."""
    return {field.name: _field_value(row, field) for field in lm.fields}


TEXT_HEADING = "\n\nText:\n"  # between the instruction (and context line) and the text


def context_line(context: Mapping[str, Any]) -> str:
    """A row's point-in-time features as one structured line of the prompt (``features:``
    recipes): what was known before the text was written, ``unknown`` where nothing was."""
    known = "; ".join(
        f"{name}: {'unknown' if value is None else value}" for name, value in context.items()
    )
    return f"Context known before this text: {known}"


def _head(instruction: str, context: Mapping[str, Any] | None) -> str:
    return "\n\n".join([instruction, *([context_line(context)] if context is not None else [])])


def prompt_messages(
    text: str, lm: LanguageTask, context: Mapping[str, Any] | None = None
) -> list[dict[str, str]]:
    """The user turn; with ``context`` (rows prepared with features) a context line sits
    between the instruction and the text, in training and evaluation alike."""
    return [{"role": "user", "content": _head(lm.instruction, context) + TEXT_HEADING + text}]


def input_text(frame_tail: str) -> str:
    """The input text of a user turn in ``prompt_messages``' layout, given what follows the
    instruction: everything after the ``Text:`` heading (the context line, if any, goes);
    ``frame_tail`` itself when it has no heading."""
    _, heading, text = frame_tail.partition(TEXT_HEADING)
    return text if heading else frame_tail


def with_context(turn: str, context: Mapping[str, Any]) -> str:
    """A served user turn with the context line where training put it: after the
    instruction, before ``Text:`` when the turn is in ``prompt_messages``' layout (as the
    extraction model is asked), else as the turn's first paragraph. The endpoint adds it to
    the de-identified turn, so the line never goes through the PHI guard."""
    head, heading, text = turn.partition(TEXT_HEADING)
    if not heading:
        return f"{context_line(context)}\n\n{turn}"
    return _head(head, context) + heading + text


def chat_example(row: dict[str, Any], lm: LanguageTask) -> list[dict[str, str]]:
    answer = json.dumps(target(row, lm), ensure_ascii=False)
    prompt = prompt_messages(row["text"], lm, row.get("context"))
    return [*prompt, {"role": "assistant", "content": answer}]


def training_conversations(rows: list[dict[str, Any]], lm: LanguageTask) -> list[Conversation]:
    """The conversations training learns from (rows without a target are not trained on):
    what the privacy audit's regurgitation probe prompts with and scans against."""
    conversations = []
    for row in rows:
        try:
            conversations.append(chat_example(row, lm))
        except TargetError:
            continue
    return conversations


def _shorten(tokenizer: Any, row: dict[str, Any], overflow: int) -> dict[str, Any]:
    """The row with its text cut by ``overflow`` tokens (plus slack for re-tokenisation)."""
    ids = tokenizer(row["text"], add_special_tokens=False)["input_ids"]
    keep = max(0, len(ids) - overflow - 8)
    return {**row, "text": tokenizer.decode(ids[:keep])}


def build_examples(
    rows: list[dict[str, Any]], tokenizer: Any, lm: LanguageTask, max_length: int
) -> tuple[list[Tokenized], Counter[str]]:
    """Tokenised training examples and a count of what happened to every row.

    ``kept + skipped_overlong + skipped_bad_target == len(rows)``; ``truncated`` counts the
    kept rows whose text was cut to fit (the answer is never cut).
    """
    examples: list[Tokenized] = []
    counts: Counter[str] = Counter()
    for row in rows:
        try:
            messages = chat_example(row, lm)
        except TargetError:
            counts["skipped_bad_target"] += 1
            continue
        example = tokenize_chat(tokenizer, row["id"], messages)
        if len(example.input_ids) > max_length and lm.overlong == "truncate":
            shorter = _shorten(tokenizer, row, len(example.input_ids) - max_length)
            example = tokenize_chat(tokenizer, row["id"], chat_example(shorter, lm))
            counts["truncated"] += len(example.input_ids) <= max_length
        if len(example.input_ids) > max_length:
            counts["skipped_overlong"] += 1
            continue
        counts["kept"] += 1
        examples.append(example)
    return examples, counts
