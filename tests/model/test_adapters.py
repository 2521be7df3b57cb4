from pathlib import Path

import numpy as np
import torch

from medops.model.adapters import PooledClassifier, adapt, load_trainable_state, trainable_state
from medops.model.encoder import load_encoder
from medops.recipe import Train


def _batch(tokenizer) -> dict[str, torch.Tensor]:
    return tokenizer(["knee pain", "skin cream every day"], padding=True, return_tensors="pt")


def _model(tiny_model_dir: Path, train: Train) -> tuple[PooledClassifier, object]:
    torch.manual_seed(0)
    encoder, tokenizer = load_encoder(str(tiny_model_dir))
    rng = np.random.default_rng(0)
    weight = rng.normal(size=(3, 32)).astype(np.float32)
    bias = np.zeros(3, dtype=np.float32)
    return PooledClassifier(adapt(encoder, train), weight, bias), tokenizer


def test_lora_trains_only_adapters_and_head(tiny_model_dir: Path) -> None:
    model, _ = _model(tiny_model_dir, Train(method="lora"))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable, "nothing to train"
    assert all("lora_" in n or n.startswith("head.") for n in trainable)


def test_checkpoint_state_round_trips_and_merge_matches(tiny_model_dir: Path) -> None:
    train = Train(method="lora")
    model, tokenizer = _model(tiny_model_dir, train)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.add_(0.05)  # lora_B starts at zero: make the adapter matter
    batch = _batch(tokenizer)
    model.eval()
    expected = model(batch["input_ids"], batch["attention_mask"])
    state = trainable_state(model, train)

    fresh, _ = _model(tiny_model_dir, train)
    fresh.eval()
    assert not torch.allclose(fresh(batch["input_ids"], batch["attention_mask"]), expected)
    load_trainable_state(fresh, state, train)
    restored = fresh(batch["input_ids"], batch["attention_mask"])
    torch.testing.assert_close(restored, expected)

    fresh.encoder = fresh.encoder.merge_and_unload()
    merged = fresh(batch["input_ids"], batch["attention_mask"])
    torch.testing.assert_close(merged, expected, atol=1e-5, rtol=1e-4)


def test_full_fine_tuning_trains_every_encoder_weight(tiny_model_dir: Path) -> None:
    model, _ = _model(tiny_model_dir, Train(method="full"))
    assert all(p.requires_grad for p in model.encoder.parameters())
    state = trainable_state(model, Train(method="full"))
    assert any(k.startswith("encoder.") for k in state) and "head.weight" in state
