"""Reading a prepared dataset: its splits, its classes and its hash.

Kept apart from ``prepare`` so a Ray worker, an evaluator or the erasure tool reads
prepared JSONL without importing the de-identification stack (spaCy, presidio).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from medops.data.split import SPLITS
from medops.errors import ConfigurationError, MissingInputError

LABELS = "labels.json"


def dataset_hash(directory: Path) -> str:
    """One hash over the three split files: names the exact data a model was trained on."""
    digest = hashlib.sha256()
    for name in SPLITS:
        digest.update(name.encode())
        digest.update((directory / f"{name}.jsonl").read_bytes())
    return digest.hexdigest()


def read_split(prepared_dir: Path, split: str) -> list[dict[str, str]]:
    """Rows of one split as ``{"id", "text", "label"[, "fields"]}`` dicts, in file order."""
    if split not in SPLITS:
        raise ConfigurationError(f"unknown split {split!r}; splits: {', '.join(SPLITS)}")
    path = Path(prepared_dir) / f"{split}.jsonl"
    if not path.is_file():
        raise MissingInputError(f"{path} does not exist: run the prepare stage first")
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def read_labels(prepared_dir: Path) -> list[str]:
    path = Path(prepared_dir) / LABELS
    if not path.is_file():
        raise MissingInputError(f"{path} does not exist: run the prepare stage first")
    return json.loads(path.read_text(encoding="utf-8"))
