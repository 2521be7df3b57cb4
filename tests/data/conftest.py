"""Shared builders for the prepare tests: tiny source files and recipes that read them.

Exposed as fixtures (factories) rather than imported, so no test depends on sys.path.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from medops.recipe import Recipe, build_recipe

Rows = list[dict[str, Any]]


def _write_tsv(path: Path, rows: Rows, fields: list[str] | None = None) -> Path:
    fields = fields or list(rows[0])
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, delimiter="\t")
        writer.writeheader()
        writer.writerows(rows)
    return path


def _write_jsonl(path: Path, lines: list[Any]) -> Path:
    text = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines)
    path.write_text(text + "\n", encoding="utf-8")
    return path


def _rows(prefix: str, label: str, count: int) -> Rows:
    """``count`` distinct, long-enough reviews with one label."""
    return [
        {"id": f"{prefix}{i}", "text": f"Review number {prefix}{i} about {label}", "label": label}
        for i in range(count)
    ]


def _recipe_for(train: Path, test: Path, fmt: str = "tsv", **data: Any) -> Recipe:
    raw = {
        "name": "unit",
        "data": {
            "sources": [
                {"uri": str(train), "format": fmt, "role": "train"},
                {"uri": str(test), "format": fmt, "role": "test"},
            ],
            "columns": {"id": "id", "text": "text", "label": "label"},
            "top_k_classes": 2,
            "min_chars": 10,
            "validation_fraction": 0.25,
            **data,
        },
    }
    return build_recipe(raw)


@pytest.fixture
def write_tsv() -> Callable[..., Path]:
    return _write_tsv


@pytest.fixture
def write_jsonl() -> Callable[..., Path]:
    return _write_jsonl


@pytest.fixture
def make_rows() -> Callable[..., Rows]:
    return _rows


@pytest.fixture
def recipe_for() -> Callable[..., Recipe]:
    return _recipe_for


@pytest.fixture
def small_recipe(tmp_path: Path) -> Callable[..., Recipe]:
    """Acne and Pain with 8 train rows each, plus a rarer class that top-2 leaves out."""

    def make(train_extra: Rows = (), test_extra: Rows = (), **data: Any) -> Recipe:
        train = _rows("a", "Acne", 8) + _rows("p", "Pain", 8) + _rows("g", "Gout", 3)
        test = _rows("ta", "Acne", 3) + _rows("tp", "Pain", 3) + _rows("tg", "Gout", 1)
        fields = ["id", "text", "label"]
        _write_tsv(tmp_path / "train.tsv", train + list(train_extra), fields)
        _write_tsv(tmp_path / "test.tsv", test + list(test_extra), fields)
        return _recipe_for(tmp_path / "train.tsv", tmp_path / "test.tsv", **data)

    return make
