import json
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from medops.model.chat import IGNORE, tokenize_chat
from medops.tasks.causal_lm.examples import (
    TargetError,
    build_examples,
    chat_example,
    input_text,
    prompt_messages,
    target,
)
from medops.tasks.causal_lm.recipe import LanguageTask, TargetField

LM = LanguageTask(
    fields=[
        TargetField(name="drug", source="drug"),
        TargetField(name="condition", source="label"),
        TargetField(
            name="sentiment",
            source="rating",
            bins={"negative": (1, 4), "neutral": (5, 6), "positive": (7, 10)},
        ),
    ]
)


def _row(text: str = "I took it for my back.", rating: str = "8", drug: str = "Tramadol"):
    return {
        "id": "train:1",
        "text": text,
        "label": "Pain",
        "fields": {"drug": drug, "rating": rating},
    }


@pytest.fixture(scope="module")
def tokenizer(tiny_lm_dir: Path):
    return AutoTokenizer.from_pretrained(tiny_lm_dir)


def test_target_copies_fields_and_bins_numbers():
    assert target(_row(rating="8"), LM) == {
        "drug": "Tramadol",
        "condition": "Pain",
        "sentiment": "positive",
    }
    assert target(_row(rating="5"), LM)["sentiment"] == "neutral"
    assert target(_row(rating="1"), LM)["sentiment"] == "negative"


@pytest.mark.parametrize(
    ("row", "needle"),
    [
        (_row(drug=""), "field 'drug' is empty"),
        (_row(rating="ten"), "is not a number"),
        (_row(rating="11"), "is in no bin"),
    ],
)
def test_bad_target_names_row_and_field_never_text(row, needle):
    row["text"] = "Jean Dupont SECRET-NOTE"
    with pytest.raises(TargetError, match=needle) as caught:
        target(row, LM)
    assert "train:1" in str(caught.value)
    assert "SECRET" not in str(caught.value)


def test_loss_only_on_the_answer_and_its_end_of_turn(tokenizer):
    messages = chat_example(_row(), LM)
    example = tokenize_chat(tokenizer, "train:1", messages)
    answered = [t for t in example.labels if t != IGNORE]
    first = example.labels.index(answered[0])
    assert all(t == IGNORE for t in example.labels[:first])
    assert example.labels[first:] == example.input_ids[first:]
    answer = tokenizer.decode(answered)
    assert json.loads(answer.split("<|im_end|>")[0]) == target(_row(), LM)
    assert "<|im_end|>" in answer, "the model must learn to stop"
    prompt = tokenizer.decode(example.input_ids[:first])
    assert prompt.endswith("<|im_start|>assistant\n")
    assert "I took it for my back." in prompt


def test_overlong_rows_are_skipped_or_truncated_and_counted(tokenizer):
    rows = [_row(), {**_row("word " * 400), "id": "train:2"}, {**_row(rating="x"), "id": "train:3"}]
    short = tokenize_chat(tokenizer, "x", chat_example(_row(), LM))
    limit = len(short.input_ids) + 40

    kept, counts = build_examples(rows, tokenizer, LM, limit)
    assert counts == {"kept": 1, "skipped_overlong": 1, "skipped_bad_target": 1}
    assert [e.id for e in kept] == ["train:1"]

    truncating = LM.model_copy(update={"overlong": "truncate"})
    kept, counts = build_examples(rows, tokenizer, truncating, limit)
    assert counts["kept"] == 2 and counts["truncated"] == 1
    assert counts["kept"] + counts["skipped_bad_target"] == len(rows)
    long = kept[1]
    assert len(long.input_ids) <= limit
    answer = tokenizer.decode([t for t in long.labels if t != IGNORE])
    assert json.loads(answer.split("<|im_end|>")[0])["condition"] == "Pain", "answer kept whole"


def test_input_text_is_what_follows_the_instruction_and_context_line():
    for context in (None, {"age": 40}):
        (turn,) = prompt_messages("my knee hurts", LM, context)
        assert input_text(turn["content"][len(LM.instruction) :]) == "my knee hurts"
    assert input_text(" no heading here") == " no heading here"
