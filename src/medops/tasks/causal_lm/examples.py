"""Prepared rows -> chat examples -> token ids with the loss on the answer only.

The extraction task asks the model for JSON built from a row's own fields (the label and
``data.columns.extra`` values), so the targets come from the data, never from a person
reading the text. Rendering goes through the tokenizer's chat template: the model is
trained in the very format it is prompted with at inference.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from medops.errors import MedopsError
from medops.model.chat import Tokenized, tokenize_chat
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


def prompt_messages(text: str, lm: LanguageTask) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"{lm.instruction}\n\nText:\n{text}"}]


def chat_example(row: dict[str, Any], lm: LanguageTask) -> list[dict[str, str]]:
    answer = json.dumps(target(row, lm), ensure_ascii=False)
    return [*prompt_messages(row["text"], lm), {"role": "assistant", "content": answer}]


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
