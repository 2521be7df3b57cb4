"""What a side keeps of a recorded exchange: the document, not the task's prompt, and label
values only as classes or fixed buckets."""

from __future__ import annotations

import json

from medops.monitor.sides import MISSING, NOT_JSON, OTHER, category, user_text, without

INSTRUCTION = "Extract the drug and the condition. Answer with JSON only."


def test_the_task_prompt_is_cut_from_a_recorded_turn():
    framed = f"{INSTRUCTION}\n\nContext known before this text: age: 40\n\nText:\nmy knee hurts"
    assert without(framed, [INSTRUCTION]) == "my knee hurts"
    assert without(f"{INSTRUCTION} my knee hurts", [INSTRUCTION]) == "my knee hurts"
    assert without("my knee hurts\n\nText:\nmore", [INSTRUCTION]) == "my knee hurts\n\nText:\nmore"


def test_only_user_turns_are_input():
    turns = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"},
    ]
    assert user_text(turns) == "a\n\nc"


def test_label_values_become_classes_or_buckets_never_free_text():
    classes = ["Acne", "Depression"]

    def answer(value: object) -> str:
        return json.dumps({"drug": "x", "condition": value})

    assert category(answer(" depression. "), "condition", classes) == "Depression"
    assert category(answer("Zebulon Quaxley"), "condition", classes) == OTHER
    assert category(answer(None), "condition", classes) == MISSING
    assert category("I think it is acne", "condition", classes) == NOT_JSON
