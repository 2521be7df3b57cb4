from pathlib import Path

import numpy as np
import pytest
import torch

from medops.model.classifier import TextClassifier
from medops.model.encoder import embed, load_encoder, mean_pool
from medops.model.probe import fit_probe
from medops.model.side_inputs import SideInputs

TEXTS = ["short one", "a much longer sentence about knee pain and relief", "mood", "skin cream"]


def test_mean_pool_ignores_padding_and_normalises() -> None:
    hidden = torch.tensor([[[1.0, 0.0], [3.0, 0.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    pooled = mean_pool(hidden, mask)
    assert torch.allclose(pooled, torch.tensor([[1.0, 0.0]]))


def test_embed_keeps_input_order_whatever_the_batching(tiny_model_dir: Path) -> None:
    encoder, tokenizer = load_encoder(str(tiny_model_dir))
    packed = embed(encoder, tokenizer, TEXTS, 32, batch_size=2, packed=True)
    padded = embed(encoder, tokenizer, TEXTS, 32, batch_size=2, packed=False)
    one_by_one = np.vstack([embed(encoder, tokenizer, [t], 32, packed=False) for t in TEXTS])
    np.testing.assert_allclose(packed, one_by_one, atol=1e-5)
    np.testing.assert_allclose(padded, one_by_one, atol=1e-5)
    assert np.allclose(np.linalg.norm(packed, axis=1), 1.0, atol=1e-5)


def test_saved_classifier_predicts_the_same_after_reload(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    encoder, tokenizer = load_encoder(str(tiny_model_dir))
    rng = np.random.default_rng(0)
    model = TextClassifier(
        encoder, tokenizer, rng.normal(size=(3, 32)), rng.normal(size=3), ["a", "b", "c"], 32
    )
    before = model.predict_proba(TEXTS)
    loaded = TextClassifier.load(model.save(tmp_path / "model"))
    after = loaded.predict_proba(TEXTS)
    np.testing.assert_allclose(before, after, atol=1e-5)
    np.testing.assert_allclose(after.sum(axis=1), 1.0, atol=1e-6)
    assert loaded.labels == ["a", "b", "c"]


def test_a_bf16_encoder_pools_in_float32_close_to_float32(tiny_model_dir: Path) -> None:
    encoder, tokenizer = load_encoder(str(tiny_model_dir))
    full = TextClassifier(encoder, tokenizer, np.eye(32)[:3], np.zeros(3), ["a", "b", "c"], 32)
    expected = embed(full.encoder, tokenizer, TEXTS, 32)
    half = full.to(torch.bfloat16)
    assert next(half.encoder.parameters()).dtype == torch.bfloat16
    got = embed(half.encoder, tokenizer, TEXTS, 32)
    assert got.dtype == np.float32
    # bf16 keeps 8 bits of mantissa: close to, never equal to, the float32 embedding
    assert np.all(np.sum(got * expected, axis=1) > 0.99) and not np.array_equal(got, expected)
    one_by_one = np.vstack([embed(half.encoder, tokenizer, [t], 32) for t in TEXTS])
    np.testing.assert_allclose(got, one_by_one, atol=2e-2)  # batching changes bf16 rounding only


def test_context_features_reach_the_head_and_survive_a_reload(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    encoder, tokenizer = load_encoder(str(tiny_model_dir))
    side = SideInputs.fit([{"reviews_before": 0}, {"reviews_before": 10}])
    weight = np.zeros((2, 32 + side.width))
    weight[1, 32] = 5.0  # class "b" grows with the drug's earlier reviews
    model = TextClassifier(encoder, tokenizer, weight, np.zeros(2), ["a", "b"], 32, side)
    contexts = [{"reviews_before": 0}, {"reviews_before": 10}]
    before = model.predict_proba(TEXTS[:2], contexts)
    assert before[0].argmax() == 0 and before[1].argmax() == 1
    loaded = TextClassifier.load(model.save(tmp_path / "model"))
    assert loaded.side == side
    np.testing.assert_allclose(loaded.predict_proba(TEXTS[:2], contexts), before, atol=1e-5)
    # no context: scored as "no history" (the missing flag), not as an error
    np.testing.assert_allclose(loaded.predict_proba(TEXTS[:1])[0], [0.5, 0.5], atol=1e-5)


def test_load_refuses_a_directory_that_is_not_a_model(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a medops model"):
        TextClassifier.load(tmp_path)


def test_probe_refuses_unknown_and_absent_classes() -> None:
    features = np.eye(4)
    with pytest.raises(ValueError, match=r"labels \['z'\] are not in the class list"):
        fit_probe(features, ["a", "b", "a", "z"], ["a", "b"], 1.0, 0)
    with pytest.raises(ValueError, match=r"classes \['c'\] have no training rows"):
        fit_probe(features, ["a", "b", "a", "b"], ["a", "b", "c"], 1.0, 0)


def test_length_sorted_batches_bound_padding_and_size() -> None:
    from medops.model.encoder import MAX_PADDING, length_sorted_batches

    lengths = [100, 10, 12, 11, 101, 300, 13, 14]
    batches = list(length_sorted_batches(lengths, batch_size=4))
    assert batches == [[1, 3, 2, 6], [7], [0, 4], [5]]
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        longest = max(lengths[i] for i in batch)
        assert longest * len(batch) <= (1 + MAX_PADDING) * sum(lengths[i] for i in batch)
