from pathlib import Path

import pytest
from transformers import AutoTokenizer

from medops.errors import ConfigurationError, DataError
from medops.model.chat import IGNORE, tokenize_chat, tokenize_conversation

END = "<|im_end|>\n"  # SmolLM2's end of turn, as its template writes it after every turn
CONVERSATION = [
    {"role": "system", "content": "You answer clinicians briefly."},
    {"role": "user", "content": "Usual adult dose of amoxicillin?"},
    {"role": "assistant", "content": "500 mg every 8 hours."},
    {"role": "user", "content": "And for a child?"},
    {"role": "assistant", "content": "25 mg/kg/day in divided doses."},
]


@pytest.fixture(scope="module")
def tokenizer(tiny_lm_dir: Path):
    return AutoTokenizer.from_pretrained(tiny_lm_dir)


def _labelled_runs(labels: list[int]) -> list[list[int]]:
    """The maximal runs of labelled tokens, in order."""
    runs: list[list[int]] = []
    previous = IGNORE
    for label in labels:
        if label != IGNORE:
            if previous == IGNORE:
                runs.append([])
            runs[-1].append(label)
        previous = label
    return runs


def test_every_assistant_turn_and_nothing_else_is_labelled(tokenizer):
    example = tokenize_conversation(tokenizer, "c1", CONVERSATION)
    runs = [tokenizer.decode(run) for run in _labelled_runs(example.labels)]
    assert runs == [CONVERSATION[2]["content"] + END, CONVERSATION[4]["content"] + END]
    labelled = tokenizer.decode([t for t in example.labels if t != IGNORE])
    assert not any(m["content"] in labelled for m in CONVERSATION if m["role"] != "assistant")
    assert "assistant" not in labelled, "the header that opens an answer is prompt"
    for label, token in zip(example.labels, example.input_ids, strict=True):
        assert label in (IGNORE, token)


def test_input_ids_are_the_whole_rendered_conversation(tokenizer):
    example = tokenize_conversation(tokenizer, "c1", CONVERSATION)
    rendered = tokenizer.apply_chat_template(CONVERSATION, tokenize=False)
    assert example.input_ids == tokenizer(rendered, add_special_tokens=False)["input_ids"]
    assert example.id == "c1" and len(example.labels) == len(example.input_ids)


def test_a_final_turn_only_conversation_matches_tokenize_chat(tokenizer):
    messages = CONVERSATION[1:3]
    assert tokenize_conversation(tokenizer, "c2", messages) == tokenize_chat(
        tokenizer, "c2", messages
    )


def test_turns_after_the_last_answer_are_prompt(tokenizer):
    messages = [*CONVERSATION[1:3], {"role": "user", "content": "Thanks."}]
    example = tokenize_conversation(tokenizer, "c3", messages)
    rendered = tokenizer.apply_chat_template(messages, tokenize=False)
    assert example.input_ids == tokenizer(rendered, add_special_tokens=False)["input_ids"]
    runs = [tokenizer.decode(run) for run in _labelled_runs(example.labels)]
    assert runs == [CONVERSATION[2]["content"] + END]


def test_a_conversation_without_an_answer_is_refused(tokenizer):
    with pytest.raises(DataError, match="c4: no assistant turn"):
        tokenize_conversation(tokenizer, "c4", CONVERSATION[:2])


class _DroppingTemplate:
    """A template that rewrites earlier answers once more turns follow (as some do)."""

    def apply_chat_template(self, messages, tokenize, add_generation_prompt=False):
        answers = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
        earlier = set(answers[:-1])
        text = "".join(
            f"<{m['role']}>{'...' if i in earlier else m['content']}"
            for i, m in enumerate(messages)
        )
        return text + ("<assistant>" if add_generation_prompt else "")

    def __call__(self, text, add_special_tokens):
        return {"input_ids": [ord(c) for c in text]}


def test_a_template_that_rewrites_earlier_turns_is_a_configuration_error():
    with pytest.raises(ConfigurationError, match="differently once another turn follows"):
        tokenize_conversation(_DroppingTemplate(), "c5", CONVERSATION[1:])
