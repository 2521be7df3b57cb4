from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from transformers import AutoModelForCausalLM

from medops.model.chat import IGNORE, Tokenized
from medops.train.packing import collate_packed, collate_padded, pack


@given(st.lists(st.integers(min_value=1, max_value=64), max_size=60), st.integers(64, 200))
def test_pack_places_every_example_once_within_the_limit(lengths, limit):
    bins = pack(lengths, limit)
    placed = sorted(i for b in bins for i in b)
    assert placed == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in b) <= limit for b in bins)


def test_pack_refuses_an_example_longer_than_a_row():
    with pytest.raises(ValueError, match="longer than 8 tokens"):
        pack([3, 9], 8)


def _examples(count: int, seed: int = 0) -> list[Tokenized]:
    generator = torch.Generator().manual_seed(seed)
    out = []
    for i in range(count):
        n = int(torch.randint(5, 30, (1,), generator=generator))
        ids = torch.randint(10, 1000, (n,), generator=generator).tolist()
        labels = [IGNORE] * (n // 2) + ids[n // 2 :]
        out.append(Tokenized(f"r{i}", ids, labels))
    return out


def test_position_ids_restart_per_example_and_padding_is_its_own_segment():
    examples = _examples(3)
    batch = collate_packed([examples[:2], examples[2:]], pad_id=0)
    n0, n1, n2 = (len(e.input_ids) for e in examples)
    positions = batch["position_ids"]
    assert positions[0, :n0].tolist() == list(range(n0))
    assert positions[0, n0 : n0 + n1].tolist() == list(range(n1))
    assert positions[1, n2:].tolist() == list(range(positions.shape[1] - n2))
    assert (batch["labels"][1, n2:] == IGNORE).all()


@pytest.fixture(scope="module")
def tiny_lm(tiny_lm_dir: Path):
    model = AutoModelForCausalLM.from_pretrained(tiny_lm_dir, attn_implementation="sdpa")
    return model.eval()


def test_packed_logits_equal_each_example_alone(tiny_lm):
    """No cross-talk: every packed example sees exactly what it sees alone."""
    examples = _examples(5, seed=1)
    rows = [examples[:3], examples[3:]]
    packed = collate_packed(rows, pad_id=0)
    with torch.no_grad():
        # training runs without a KV cache, which is what lets transformers see the packing
        ids, positions = packed["input_ids"], packed["position_ids"]
        logits = tiny_lm(input_ids=ids, position_ids=positions, use_cache=False).logits
        for r, row in enumerate(rows):
            start = 0
            for example in row:
                alone = collate_padded([example], pad_id=0)
                expected = tiny_lm(
                    input_ids=alone["input_ids"], attention_mask=alone["attention_mask"]
                ).logits[0]
                got = logits[r, start : start + len(example.input_ids)]
                torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
                start += len(example.input_ids)


def test_without_position_resets_the_examples_would_leak(tiny_lm):
    """The control: the same packed row with running positions gives different logits."""
    examples = _examples(2, seed=2)
    packed = collate_packed([examples], pad_id=0)
    running = torch.arange(packed["input_ids"].shape[1]).unsqueeze(0)
    with torch.no_grad():
        ids = packed["input_ids"]
        isolated = tiny_lm(input_ids=ids, position_ids=packed["position_ids"], use_cache=False)
        leaking = tiny_lm(input_ids=ids, position_ids=running, use_cache=False)
    second = slice(len(examples[0].input_ids), packed["input_ids"].shape[1])
    assert not torch.allclose(isolated.logits[0, second], leaking.logits[0, second], atol=1e-4)


def test_answer_loss_uses_only_answer_positions_and_matches_full_logits(tiny_lm):
    """The loop's loss (LM head on answer positions only) equals the textbook computation."""
    from medops.model.loss import answer_loss_sum

    examples = _examples(4, seed=3)
    batch = collate_packed([examples[:2], examples[2:]], pad_id=0)
    with torch.no_grad():
        got = answer_loss_sum(tiny_lm, batch)
        logits = tiny_lm(
            input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False
        ).logits
        expected = torch.nn.functional.cross_entropy(
            logits[:, :-1].reshape(-1, logits.shape[-1]),
            batch["labels"][:, 1:].reshape(-1),
            ignore_index=IGNORE,
            reduction="sum",
        )
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-4)
