"""Instruct recipes and data files for the tests: real formats, the tiny Llama as base."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from medops.recipe import Recipe, build_recipe
from tests.conftest import ROOT

INSTRUCT_RECIPE = ROOT / "recipes" / "instruct-medmcqa.yaml"


def write_jsonl(path: Path, records: list[object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def qa_records(prefix: str, n: int) -> list[dict[str, object]]:
    """Short messages conversations whose answer follows from the question (learnable)."""
    drugs = ["amoxicillin", "ibuprofen", "metformin", "lisinopril"]
    return [
        {
            "id": f"{prefix}{i}",
            "messages": [
                {"role": "user", "content": f"Case {prefix}{i}: which drug is number {i % 4}?"},
                {"role": "assistant", "content": drugs[i % 4]},
            ],
        }
        for i in range(n)
    ]


def instruct_recipe(tmp: Path, base: Path | str, sources: list[dict], *overrides: str) -> Recipe:
    """The example recipe on other sources (and, for training tests, the tiny model)."""
    raw = yaml.safe_load(INSTRUCT_RECIPE.read_text(encoding="utf-8"))
    raw["data"]["sources"] = sources
    raw["deid"] = {"policy": "redact"}  # the example's data has no patients; the tests do
    return build_recipe(
        raw,
        [
            f"output_dir={tmp / 'run'}",
            f"model.base={base}",
            "model.max_length=128",
            "train.epochs=2",
            "train.batch_size=4",
            "train.learning_rate=0.01",
            "train.lora.dropout=0.0",
            "train.checkpoint_every=0",
            "lm.max_new_tokens=6",
            *overrides,
        ],
    )


@pytest.fixture
def sources(tmp_path: Path) -> list[dict]:
    train = write_jsonl(tmp_path / "train.jsonl", qa_records("t", 16))
    test = write_jsonl(tmp_path / "test.jsonl", qa_records("h", 4))
    return [{"uri": str(train), "role": "train"}, {"uri": str(test), "role": "test"}]
