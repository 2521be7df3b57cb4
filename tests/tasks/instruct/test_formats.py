import json
from pathlib import Path

import pandas as pd
import pytest

from medops.errors import ConfigurationError, MissingInputError
from medops.tasks.instruct.formats import (
    FORMATS,
    REASONS,
    Conversation,
    NotJsonObject,
    RecordError,
    detect_format,
    parse,
    read_records,
    to_conversation,
)

SECRET = "Jean Dupont SECRET-NOTE"
SAMPLES = {
    "prompt-response": {"prompt": "Dose of X?", "response": "10 mg."},
    "alpaca": {"instruction": "Summarise.", "input": "Note text.", "output": "Short."},
    "sharegpt": {
        "conversations": [
            {"from": "system", "value": "Be brief."},
            {"from": "human", "value": "Hi"},
            {"from": "gpt", "value": "Hello"},
        ]
    },
    "messages": {
        "messages": [
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
        ]
    },
    "feedback": {
        "id": "h1",
        "item": {"messages": [{"role": "user", "content": "Dose of X?"}]},
        "verdict": "correct",
        "reason": "",
        "ls_annotation_id": 7,
        "fields": {"answer": {"model": "100 mg.", "reviewed": "10 mg.", "accepted": False}},
    },
}


def _jsonl(path: Path, lines: list[object]) -> Path:
    path.write_text(
        "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)
    )
    return path


def _turns(*pairs: tuple[str, object]) -> dict[str, object]:
    return {"messages": [{"role": role, "content": content} for role, content in pairs]}


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_is_detected_from_jsonl(tmp_path: Path, fmt: str):
    records = read_records(_jsonl(tmp_path / "data.jsonl", [SAMPLES[fmt]] * 2))
    kept, quarantined, chosen = parse(records)
    assert chosen == fmt == detect_format(records)
    assert len(kept) == 2 and quarantined == []
    assert kept[0].messages[-1]["role"] == "assistant"


def test_format_is_detected_from_parquet_with_nested_turns(tmp_path: Path):
    rows = [
        {"id": "a", **SAMPLES["messages"]},
        {
            "id": "b",
            **_turns(("user", "Q"), ("assistant", "A"), ("user", "Q2"), ("assistant", "B")),
        },
    ]
    path = tmp_path / "data.parquet"
    pd.DataFrame(rows).to_parquet(path)
    records = read_records(path)
    assert records == rows, "nested columns come back as plain lists and dicts"
    kept, quarantined, chosen = parse(records)
    assert chosen == "messages" and quarantined == []
    assert [c.id for c in kept] == ["a", "b"]
    assert kept[1].messages[3] == {"role": "assistant", "content": "B"}


def test_a_malformed_first_record_does_not_decide_the_format():
    records = [NotJsonObject(1), {}, {"instruction": "Do."}, SAMPLES["alpaca"]]
    assert detect_format(records) == "alpaca"


def test_detection_error_names_keys_and_formats_never_values():
    records = [{"question": SECRET, "messages": [{"speaker": "u", "text": SECRET}]}]
    with pytest.raises(ConfigurationError) as caught:
        detect_format(records)
    message = str(caught.value)
    assert "messages, question" in message and "speaker, text" in message
    assert all(fmt in message for fmt in FORMATS)
    assert "SECRET" not in message


def test_detection_without_any_object_says_to_set_the_format():
    with pytest.raises(ConfigurationError, match="cannot be detected"):
        detect_format([NotJsonObject(1), {}])


def test_unknown_extension_and_missing_file(tmp_path: Path):
    with pytest.raises(ConfigurationError, match=r"\.jsonl, \.parquet"):
        read_records(tmp_path / "data.csv")
    with pytest.raises(MissingInputError):
        read_records(tmp_path / "absent.jsonl")


def test_bad_jsonl_lines_are_records_kept_by_line_number(tmp_path: Path):
    path = _jsonl(tmp_path / "data.jsonl", [SAMPLES["prompt-response"], "{broken", "", "[1, 2]"])
    with path.open("ab") as out:
        out.write(b'{"prompt": "\xff"}\n')
    records = read_records(path)
    assert records[1:] == [NotJsonObject(2), NotJsonObject(4), NotJsonObject(5)]
    kept, quarantined, _ = parse(records)
    assert len(kept) == 1
    assert quarantined == [(f"line:{n}", "not_json_object") for n in (2, 4, 5)]


@pytest.mark.parametrize(
    ("fmt", "record", "reason"),
    [
        ("messages", "not a dict", "not_json_object"),
        ("prompt-response", {"prompt": "Q"}, "missing_field"),
        ("prompt-response", {"prompt": "Q", "response": 3}, "missing_field"),
        ("alpaca", {"instruction": "Do.", "input": 5, "output": "A"}, "missing_field"),
        ("sharegpt", {"conversations": "Hi"}, "missing_field"),
        ("sharegpt", {"conversations": [{"from": "human"}]}, "missing_field"),
        ("messages", _turns(("user", None), ("assistant", "A")), "missing_field"),
        ("sharegpt", {"conversations": [{"from": "bot", "value": "Hi"}]}, "unknown_role"),
        ("messages", _turns(("user", "Q"), ("tool", "{}"), ("assistant", "A")), "unknown_role"),
        (
            "messages",
            _turns(("user", [{"type": "image_url", "image_url": {}}]), ("assistant", "A")),
            "unsupported_content",
        ),
        ("prompt-response", {"prompt": "Q", "response": "  \n"}, "empty_content"),
        ("alpaca", {"instruction": " ", "input": "", "output": "A"}, "empty_content"),
        ("messages", _turns(("system", "S"), ("user", "Q")), "no_assistant_turn"),
        ("messages", {"messages": []}, "no_assistant_turn"),
        ("messages", _turns(("assistant", "A"), ("user", "Q")), "roles_out_of_order"),
        (
            "messages",
            _turns(("user", "Q"), ("user", "Q"), ("assistant", "A")),
            "roles_out_of_order",
        ),
        (
            "messages",
            _turns(("user", "Q"), ("assistant", "A"), ("system", "S"), ("assistant", "A")),
            "roles_out_of_order",
        ),
    ],
)
def test_each_reason_quarantines_with_its_code_and_no_text(fmt, record, reason):
    if isinstance(record, dict):
        record = {**record, "id": "r1", "note": SECRET}
    with pytest.raises(RecordError) as caught:
        to_conversation(record, fmt, 7)
    assert caught.value.reason == reason
    assert caught.value.record_id == ("r1" if isinstance(record, dict) else f"{fmt}:7")
    assert "SECRET" not in str(caught.value)
    assert reason in REASONS


def test_every_record_is_accounted_for():
    records = [
        SAMPLES["messages"],
        _turns(("user", "Q")),
        "oops",
        NotJsonObject(4),
        _turns(("user", "Q"), ("assistant", "A"), ("user", "Trailing")),
        _turns(("user", ""), ("assistant", "A")),
    ]
    kept, quarantined, _ = parse(records, fmt="messages")
    assert len(kept) + len(quarantined) == len(records)
    assert [c.id for c in kept] == ["messages:1", "messages:5"]
    assert [reason for _, reason in quarantined] == [
        "no_assistant_turn",
        "not_json_object",
        "not_json_object",
        "empty_content",
    ]
    assert {reason for _, reason in quarantined} <= REASONS.keys()


def test_explicit_format_overrides_detection_and_unknown_format_is_refused():
    kept, quarantined, chosen = parse([SAMPLES["alpaca"]], fmt="prompt-response")
    assert (kept, quarantined, chosen) == (
        [],
        [("prompt-response:1", "missing_field")],
        "prompt-response",
    )
    with pytest.raises(ConfigurationError, match="auto or one of prompt-response"):
        parse([SAMPLES["alpaca"]], fmt="chatml")


def test_system_prompt_is_added_only_where_there_is_none():
    records = [SAMPLES["messages"], SAMPLES["sharegpt"]]
    with_prompt = parse(records, fmt="auto", system_prompt="You are careful.")[0]
    assert with_prompt[0].messages[0] == {"role": "system", "content": "You are careful."}
    assert len(with_prompt[0].messages) == 3
    without = parse([SAMPLES["sharegpt"]], system_prompt="You are careful.")[0][0]
    assert without.messages[0] == {"role": "system", "content": "Be brief."}
    assert parse(records[:1])[0][0].messages[0]["role"] == "user"


def test_alpaca_input_follows_the_instruction_and_turns_are_mapped():
    conv = to_conversation(SAMPLES["alpaca"], "alpaca", 1)
    assert conv == Conversation(
        "alpaca:1",
        (
            {"role": "user", "content": "Summarise.\n\nNote text."},
            {"role": "assistant", "content": "Short."},
        ),
    )
    no_input = {**SAMPLES["alpaca"], "input": "  "}
    assert to_conversation(no_input, "alpaca", 1).messages[0]["content"] == "Summarise."
    input_only = {**SAMPLES["alpaca"], "instruction": ""}
    assert to_conversation(input_only, "alpaca", 1).messages[0]["content"] == "Note text."
    sharegpt = {
        "conversations": [{"from": "user", "value": "Hi"}, {"from": "assistant", "value": "Yo"}]
    }
    assert [m["role"] for m in to_conversation(sharegpt, "sharegpt", 1).messages] == [
        "user",
        "assistant",
    ]


def test_openai_text_parts_are_joined():
    parts = [{"type": "text", "text": "Line one."}, {"type": "text", "text": "Line two."}]
    conv = to_conversation(_turns(("user", parts), ("assistant", "A")), "messages", 1)
    assert conv.messages[0]["content"] == "Line one.\nLine two."


@pytest.mark.parametrize(
    ("given", "expected"),
    [("note-12", "note-12"), (12, "12"), ("", "alpaca:3"), (True, "alpaca:3"), (None, "alpaca:3")],
)
def test_ids_come_from_the_record_else_its_position(given, expected):
    record = {**SAMPLES["alpaca"], "id": given}
    assert to_conversation(record, "alpaca", 3).id == expected


def test_a_reviewed_item_trains_on_the_correction_and_a_rejected_one_is_quarantined():
    corrected = to_conversation(SAMPLES["feedback"], "feedback", 1)
    assert [m["content"] for m in corrected.messages] == ["Dose of X?", "10 mg."]
    rejected = {**SAMPLES["feedback"], "verdict": "reject", "reason": "wrong dose"}
    kept, quarantined, _ = parse([rejected, SAMPLES["feedback"]], fmt="feedback")
    assert quarantined == [("h1", "rejected_in_review")] and len(kept) == 1
