"""The record formats instruction and chat fine-tuning data comes in, read into conversations.

Users bring data in whichever shape their tools wrote it: prompt/response pairs, Alpaca,
ShareGPT or OpenAI-style ``messages``. Every record becomes a ``Conversation`` or is
quarantined with a reason code, so nothing is dropped silently and
``len(kept) + len(quarantined) == len(records)``. Errors and reasons name keys, record ids
and line numbers, never a record's text: the data may hold PHI.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow
import pyarrow.parquet as pq

from medops.errors import ConfigurationError, DataError, MedopsError, MissingInputError

FORMATS = ("prompt-response", "alpaca", "sharegpt", "messages", "feedback")
ROLES = ("system", "user", "assistant")
EXTENSIONS = (".jsonl", ".parquet")
# ShareGPT speakers; some exports already use the OpenAI role names
_SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "system": "system",
}

REASONS: dict[str, str] = {
    "not_json_object": "a line or row that is not a JSON object",
    "missing_field": "a required key is absent or its value is not a string",
    "unknown_role": "a turn whose role is not system, user or assistant (ShareGPT: human, gpt)",
    "unsupported_content": "a message content part that is not text (an image, audio, ...)",
    "empty_content": "a turn whose content is empty or only whitespace",
    "roles_out_of_order": (
        "after an optional leading system turn, user and assistant turns do not alternate "
        "starting with user"
    ),
    "no_assistant_turn": "no assistant turn to learn from",
    "rejected_in_review": "a reviewer rejected the model's answer (a hard example, not trained on)",
}


@dataclass(frozen=True)
class Conversation:
    """One training conversation: turns with roles in ``ROLES`` only, user first."""

    id: str
    messages: tuple[dict[str, str], ...]


@dataclass(frozen=True)
class NotJsonObject:
    """A JSONL line that is not a JSON object: kept in place so it is counted, by line."""

    line: int


class RecordError(MedopsError, ValueError):
    """A record that cannot become a conversation; ``reason`` is a ``REASONS`` code."""

    def __init__(self, record_id: str, reason: str) -> None:
        super().__init__(f"record {record_id}: {reason} ({REASONS[reason]})")
        self.record_id = record_id
        self.reason = reason


def _turn_keys(value: object) -> set[str]:
    """The keys of a turn list's first turn (empty when there is none to look at)."""
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return set(value[0])
    return set()


def _format_of(record: dict[str, Any]) -> str | None:
    if {"verdict", "fields", "item", "ls_annotation_id"} <= record.keys():
        return "feedback"  # a row of `medops review pull`'s feedback.jsonl
    if {"role", "content"} <= _turn_keys(record.get("messages")):
        return "messages"
    if {"from", "value"} <= _turn_keys(record.get("conversations")):
        return "sharegpt"
    if {"instruction", "output"} <= record.keys():
        return "alpaca"
    if {"prompt", "response"} <= record.keys():
        return "prompt-response"
    return None


def _keys_seen(record: dict[str, Any]) -> str:
    """The record's keys and its turns' keys, for an error message (never a value)."""
    seen = ", ".join(sorted(map(str, record)))
    for key in ("messages", "conversations"):
        if turn := _turn_keys(record.get(key)):
            seen += f" ({key} turn keys: {', '.join(sorted(map(str, turn)))})"
    return seen


def detect_format(records: Sequence[object]) -> str:
    """The format of the first non-empty record that has one of the four shapes.

    A malformed first record does not decide for the whole file; it is quarantined later.
    """
    objects = [r for r in records if isinstance(r, dict) and r]
    for record in objects:
        if fmt := _format_of(record):
            return fmt
    if not objects:
        raise ConfigurationError(
            f"no record is a non-empty JSON object, so the format cannot be detected; "
            f"set it to one of {', '.join(FORMATS)}"
        )
    raise ConfigurationError(
        f"records are in none of the formats {', '.join(FORMATS)}: the first has keys "
        f"{_keys_seen(objects[0])}; expected prompt+response, instruction+output[+input], "
        "conversations of from+value, or messages of role+content"
    )


def _read_jsonl(path: Path) -> list[dict[str, Any] | NotJsonObject]:
    records: list[dict[str, Any] | NotJsonObject] = []
    data = path.read_bytes().removeprefix(b"\xef\xbb\xbf")
    for number, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line.decode("utf-8"))
        except ValueError:  # bad JSON or bad UTF-8
            value = None
        records.append(value if isinstance(value, dict) else NotJsonObject(number))
    return records


def read_records(path: Path) -> list[dict[str, Any] | NotJsonObject]:
    """Records of a JSONL or Parquet file, in order, as plain dicts, lists and strings.

    A JSONL line that is not a JSON object stays in the list as ``NotJsonObject`` so it is
    quarantined and counted rather than failing the whole file; blank lines are no records.
    """
    suffix = path.suffix.lower()
    if suffix not in EXTENSIONS:
        raise ConfigurationError(
            f"{path.name}: cannot read {suffix or 'a file without extension'}; "
            f"use one of {', '.join(EXTENSIONS)}"
        )
    if not path.is_file():
        raise MissingInputError(f"{path} does not exist")
    if suffix == ".jsonl":
        return _read_jsonl(path)
    try:
        # pyarrow gives nested columns as plain lists and dicts (pandas would give arrays)
        rows: list[dict[str, Any] | NotJsonObject] = pq.read_table(path).to_pylist()
    except pyarrow.ArrowException as error:
        raise DataError(f"{path.name}: unreadable parquet: {error}") from None
    return rows


def _record_id(record: dict[str, Any], fmt: str, index: int) -> str:
    value = record.get("id")
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value
    return f"{fmt}:{index}"


def _text(record: dict[str, Any], key: str, record_id: str) -> str:
    value = record.get(key)
    if not isinstance(value, str):
        raise RecordError(record_id, "missing_field")
    return value


def _content(value: object, record_id: str) -> str:
    """A message's content: a string, or OpenAI text parts joined by newlines."""
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise RecordError(record_id, "missing_field")
    texts = []
    for part in value:
        if not (isinstance(part, dict) and part.get("type") == "text"):
            raise RecordError(record_id, "unsupported_content")
        texts.append(_text(part, "text", record_id))
    return "\n".join(texts)


def _turns(record: dict[str, Any], key: str, record_id: str) -> list[dict[str, Any]]:
    turns = record.get(key)
    if not (isinstance(turns, list) and all(isinstance(t, dict) for t in turns)):
        raise RecordError(record_id, "missing_field")
    return turns


def _messages(record: dict[str, Any], fmt: str, record_id: str) -> list[dict[str, str]]:
    """The record's turns as role/content pairs, before any order check."""
    if fmt == "prompt-response":
        prompt, response = (_text(record, k, record_id) for k in ("prompt", "response"))
        return [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]
    if fmt == "alpaca":
        instruction, output = (_text(record, k, record_id) for k in ("instruction", "output"))
        extra = record.get("input")
        if extra is not None and not isinstance(extra, str):
            raise RecordError(record_id, "missing_field")
        prompt = "\n\n".join(part for part in (instruction, extra or "") if part.strip())
        return [{"role": "user", "content": prompt}, {"role": "assistant", "content": output}]
    if fmt == "sharegpt":
        messages = []
        for turn in _turns(record, "conversations", record_id):
            speaker = _text(turn, "from", record_id)
            if speaker not in _SHAREGPT_ROLES:
                raise RecordError(record_id, "unknown_role")
            content = _text(turn, "value", record_id)
            messages.append({"role": _SHAREGPT_ROLES[speaker], "content": content})
        return messages
    if fmt == "feedback":
        return _reviewed(record, record_id)
    messages = []
    for turn in _turns(record, "messages", record_id):
        role = _text(turn, "role", record_id)
        if role not in ROLES:
            raise RecordError(record_id, "unknown_role")
        messages.append({"role": role, "content": _content(turn.get("content"), record_id)})
    return messages


def _reviewed(record: dict[str, Any], record_id: str) -> list[dict[str, str]]:
    """A reviewed item: its conversation, then the answer as the reviewer left it (the
    model's when accepted, the correction otherwise); a rejected one is a hard example."""
    if record.get("verdict") == "reject":
        raise RecordError(record_id, "rejected_in_review")
    item, fields = record.get("item"), record.get("fields")
    if not (isinstance(item, dict) and isinstance(fields, dict)):
        raise RecordError(record_id, "missing_field")
    answer = fields.get("answer")
    if not isinstance(answer, dict):
        raise RecordError(record_id, "missing_field")
    messages = _messages(item, "messages", record_id)
    return [*messages, {"role": "assistant", "content": _text(answer, "reviewed", record_id)}]


def _check_turns(messages: list[dict[str, str]], record_id: str) -> None:
    if any(not m["content"].strip() for m in messages):
        raise RecordError(record_id, "empty_content")
    roles = [m["role"] for m in messages]
    if "assistant" not in roles:
        raise RecordError(record_id, "no_assistant_turn")
    dialogue = roles[1:] if roles[0] == "system" else roles
    if any(role != ("user", "assistant")[i % 2] for i, role in enumerate(dialogue)):
        raise RecordError(record_id, "roles_out_of_order")


def to_conversation(
    record: object, fmt: str, index: int, system_prompt: str | None = None
) -> Conversation:
    """One record as a conversation, or ``RecordError`` with the reason it cannot be one.

    ``index`` is the record's 1-based position, its id when it has no ``id`` of its own;
    ``system_prompt`` becomes the first turn of a conversation that has no system turn.
    """
    if isinstance(record, NotJsonObject):
        raise RecordError(f"line:{record.line}", "not_json_object")
    if not isinstance(record, dict):
        raise RecordError(f"{fmt}:{index}", "not_json_object")
    record_id = _record_id(record, fmt, index)
    messages = _messages(record, fmt, record_id)
    _check_turns(messages, record_id)
    if system_prompt and messages[0]["role"] != "system":
        messages.insert(0, {"role": "system", "content": system_prompt})
    return Conversation(record_id, tuple(messages))


def parse(
    records: Sequence[object], fmt: str = "auto", system_prompt: str | None = None
) -> tuple[list[Conversation], list[tuple[str, str]], str]:
    """(kept conversations, quarantined (id, reason) pairs, the format used).

    Every record is accounted for: ``len(kept) + len(quarantined) == len(records)``.
    """
    if fmt != "auto" and fmt not in FORMATS:
        raise ConfigurationError(
            f"format {fmt!r} is unknown; use auto or one of {', '.join(FORMATS)}"
        )
    chosen = detect_format(records) if fmt == "auto" else fmt
    kept: list[Conversation] = []
    quarantined: list[tuple[str, str]] = []
    for index, record in enumerate(records, start=1):
        try:
            kept.append(to_conversation(record, chosen, index, system_prompt))
        except RecordError as error:
            quarantined.append((error.record_id, error.reason))
    return kept, quarantined, chosen
