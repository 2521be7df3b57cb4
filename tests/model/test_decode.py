"""Batched decoding: per-sequence limits, streaming, abandonment, and greedy == unbatched."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from medops.model.chat import render_prompt
from medops.model.decode import Finished, GenerationParams, Sequence_, decode

PROMPTS = [
    "Patient reports headache after starting lisinopril.",
    "Sleep is better on sertraline but I feel nauseous every morning and tired.",
    "ok",
    "My acne cleared in three weeks with doxycycline, no side effects so far at all.",
]


@pytest.fixture(scope="module")
def lm(tiny_lm_dir: Path):
    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(tiny_lm_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_lm_dir, dtype=torch.float32).eval()
    return model, tokenizer


def prompt_ids(tokenizer, text: str) -> list[int]:
    prompt = render_prompt(tokenizer, [{"role": "user", "content": text}])
    return tokenizer(prompt, add_special_tokens=False)["input_ids"]


def run(lm, seqs: list[Sequence_]) -> dict[int, Finished | None]:
    model, tokenizer = lm
    return decode(
        model, tokenizer, seqs, pad_id=tokenizer.pad_token_id, eos={tokenizer.eos_token_id}
    )


def reference(lm, ids: list[int], max_tokens: int) -> list[int]:
    """Unbatched greedy ``generate``: what one-request-at-a-time serving answers."""
    model, tokenizer = lm
    with torch.inference_mode():
        out = model.generate(
            input_ids=torch.tensor([ids]),
            attention_mask=torch.ones((1, len(ids)), dtype=torch.long),
            max_new_tokens=max_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
        )
    generated = out[0, len(ids) :].tolist()
    if tokenizer.eos_token_id in generated:
        generated = generated[: generated.index(tokenizer.eos_token_id)]
    return generated


def test_batched_greedy_equals_unbatched_generate(lm):
    _, tokenizer = lm
    limits = [12, 5, 20, 9]  # different max_tokens per row: rows leave the batch at different steps
    seqs = [
        Sequence_(prompt_ids(tokenizer, p), GenerationParams(max_tokens=m))
        for p, m in zip(PROMPTS, limits, strict=True)
    ]
    results = run(lm, seqs)
    for i, seq in enumerate(seqs):
        expected = reference(lm, seq.prompt_ids, limits[i])
        assert seq.ids == expected, f"row {i}"
        finished = results[i]
        assert finished is not None
        assert finished.completion_tokens == len(expected)
        assert finished.text == tokenizer.decode(expected, skip_special_tokens=True)
        assert finished.finish_reason == ("length" if len(expected) == limits[i] else "stop")


def test_streamed_pieces_join_to_the_text(lm):
    _, tokenizer = lm
    pieces: list[str] = []
    seq = Sequence_(
        prompt_ids(tokenizer, PROMPTS[1]), GenerationParams(max_tokens=15), emit=pieces.append
    )
    finished = run(lm, [seq])[0]
    assert finished is not None and len(pieces) > 1
    assert "".join(pieces) == finished.text


def test_stop_string_ends_the_text_before_it(lm):
    _, tokenizer = lm
    free = Sequence_(prompt_ids(tokenizer, PROMPTS[0]), GenerationParams(max_tokens=20))
    full = run(lm, [free])[0]
    assert full is not None and len(full.text) > 6
    stop = full.text[4:7]
    pieces: list[str] = []
    seq = Sequence_(
        prompt_ids(tokenizer, PROMPTS[0]),
        GenerationParams(max_tokens=20, stop=(stop,)),
        emit=pieces.append,
    )
    finished = run(lm, [seq])[0]
    assert finished is not None and finished.finish_reason == "stop"
    assert finished.text == full.text[: full.text.index(stop)]
    assert "".join(pieces) == finished.text, "no part of the stop string was streamed"


def test_abandoned_sequence_leaves_the_batch(lm):
    _, tokenizer = lm
    steps = {"n": 0}

    def count(_piece: str) -> None:
        steps["n"] += 1

    gone = Sequence_(
        prompt_ids(tokenizer, PROMPTS[1]),
        GenerationParams(max_tokens=200),
        abandoned=lambda: steps["n"] >= 3,
    )
    stay = Sequence_(prompt_ids(tokenizer, PROMPTS[0]), GenerationParams(max_tokens=8), emit=count)
    results = run(lm, [gone, stay])
    assert results[0] is None, "an abandoned sequence has no result"
    assert len(gone.ids) < 10, "it stopped within a few steps of being abandoned"
    assert results[1] is not None and results[1].completion_tokens == len(
        reference(lm, stay.prompt_ids, 8)
    )


def test_sampling_is_reproducible_with_a_seed(lm):
    _, tokenizer = lm
    ids = prompt_ids(tokenizer, PROMPTS[3])
    params = GenerationParams(max_tokens=10, temperature=1.0, top_p=0.9, seed=7)
    first = run(lm, [Sequence_(ids, params)])[0]
    second = run(lm, [Sequence_(ids, params)])[0]
    assert first is not None and second is not None and first.text == second.text
