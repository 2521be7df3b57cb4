from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, DistilBertConfig, DistilBertModel

from medops.model.bins import first_fit_decreasing
from medops.model.encoder import embed, load_encoder
from medops.model.packed_encoder import pack, packs_exactly, pooled

# mixed lengths, some longer than a row's share: packing must still keep them apart
TEXTS = [
    "knee pain after the run",
    "no relief from the cream, itching at night and a rash on both arms since Monday",
    "mood better",
    "headache",
    "the tablets made me dizzy for two days, then the nausea stopped and sleep came back",
    "ok",
]


def test_rows_hold_every_text_once_within_capacity() -> None:
    lengths = [9, 3, 7, 2, 5, 12, 1]
    rows = first_fit_decreasing(lengths, capacity=10)
    assert sorted(i for row in rows for i in row) == list(range(len(lengths)))
    # a text longer than the capacity gets a row of its own; every other row fits
    assert [5] in rows
    assert all(sum(lengths[i] for i in row) <= 10 for row in rows if row != [5])
    assert rows == [[5], [0, 6], [2, 1], [4, 3]]  # first fit by decreasing length


def test_the_mask_keeps_each_text_to_itself_and_padding_to_itself() -> None:
    packed = pack([[5, 6], [7], [8, 9, 10]], [[0, 1], [2]], pad_id=0)
    assert packed.input_ids.tolist() == [[5, 6, 7], [8, 9, 10]]
    assert packed.position_ids.tolist() == [[0, 1, 0], [0, 1, 2]]
    assert packed.segment.tolist() == [[0, 0, 1], [2, 2, 2]]
    mask = packed.attention_mask[:, 0].int().tolist()
    assert mask[0] == [[1, 1, 0], [1, 1, 0], [0, 0, 1]]
    assert mask[1] == [[1, 1, 1]] * 3
    short = pack([[5], [6, 7, 8]], [[0], [1]], pad_id=0)  # row 0 padded to 3
    assert short.segment[0].tolist() == [0, -1, -1]
    assert short.attention_mask[0, 0].int().tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 1]]


def test_pooling_averages_each_text_and_ignores_padding() -> None:
    hidden = torch.tensor(
        [[[1.0, 0.0], [3.0, 0.0], [0.0, 2.0]], [[0.0, 5.0], [9.0, 9.0], [9.0, 9.0]]]
    )
    segment = torch.tensor([[0, 0, 1], [2, -1, -1]])
    got = pooled(hidden, segment, 3)
    assert torch.allclose(got, torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]))


def test_packed_embeddings_equal_each_text_alone(tiny_model_dir: Path) -> None:
    encoder, tokenizer = load_encoder(str(tiny_model_dir))
    assert packs_exactly(encoder, tokenizer)
    packed = embed(encoder, tokenizer, TEXTS, 16, batch_size=2)  # rows of 16 tokens, 2 a call
    alone = np.vstack([embed(encoder, tokenizer, [t], 16, packed=False) for t in TEXTS])
    np.testing.assert_allclose(packed, alone, atol=1e-5)


@pytest.fixture(scope="module")
def distilbert_dir(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """An encoder whose forward takes no position ids: packing must not be used on it."""
    directory = tmp_path_factory.mktemp("tiny-distilbert")
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    config = DistilBertConfig(
        vocab_size=tokenizer.vocab_size, dim=32, n_layers=1, n_heads=2, hidden_dim=64
    )
    DistilBertModel(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def test_an_encoder_without_position_ids_stays_on_padded_batches(distilbert_dir: Path) -> None:
    encoder, tokenizer = load_encoder(str(distilbert_dir))
    assert not packs_exactly(encoder, tokenizer)
    got = embed(encoder, tokenizer, TEXTS, 32, batch_size=2)
    alone = np.vstack([embed(encoder, tokenizer, [t], 32) for t in TEXTS])
    np.testing.assert_allclose(got, alone, atol=1e-5)
