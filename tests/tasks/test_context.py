"""Prepare with context: each prepared row carries the drug's history as of its own date,
never a later review's, and a recipe that cannot join says which key to add."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from medops.errors import ConfigurationError
from medops.recipe import Recipe, build_recipe
from medops.stages import run_stage
from tests.features.conftest import REVIEW_COLUMNS

WORDS = [
    "sleep",
    "mood",
    "appetite",
    "energy",
    "focus",
    "stomach",
    "headache",
    "dizziness",
    "rash",
    "calm",
]

TRAIN = [
    ("Zoloft", "Depression", "8", "January 1, 2020"),
    ("Zoloft", "Depression", "6", "February 1, 2020"),
    ("Zoloft", "Depression", "4", "March 1, 2020"),
    ("Zoloft", "Depression", "2", "April 1, 2020"),
    ("Advil", "Pain", "9", "June 1, 2019"),
    ("Advil", "Pain", "7", "July 1, 2019"),
    ("Advil", "Pain", "5", "August 1, 2019"),
    ("Advil", "Pain", "3", "September 1, 2019"),
    # planted: a review dated after every test review; no test row may count it
    ("Zoloft", "Pain", "1", "January 1, 2030"),
]
TEST = [
    ("Zoloft", "Depression", "5", "February 15, 2020"),  # sees the January and February ones
    ("Advil", "Pain", "5", "January 1, 2019"),  # before any Advil review: nothing known yet
    ("Nexium", "Pain", "5", "May 1, 2020"),  # a drug with no reviews at all
]


def _write(path: Path, rows: list[tuple[str, str, str, str]], start: int) -> str:
    """Drugs.com-shaped TSV; each review's words differ, so near-dedupe keeps them all."""
    lines = ["\t".join(REVIEW_COLUMNS)]
    for number, (drug, condition, rating, date) in enumerate(rows, start=start):
        text = " ".join(WORDS[(number * k) % len(WORDS)] + str(number * k) for k in range(1, 9))
        lines.append("\t".join([str(number), drug, condition, text, rating, date, "1"]))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def _recipe(tmp_path: Path, **columns: Any) -> Recipe:
    sources = [
        {"uri": _write(tmp_path / f"{role}.tsv", rows, start), "format": "tsv", "role": role}
        for role, rows, start in (("train", TRAIN, 1), ("test", TEST, 100))
    ]
    return build_recipe(
        {
            "name": "context",
            "output_dir": str(tmp_path / "run"),
            "data": {
                "sources": sources,
                "columns": {"id": "", "text": "review", "label": "condition", **columns},
                "validation_fraction": 0.25,
                "min_chars": 10,
            },
            "deid": {"policy": "none", "no_phi_reason": "synthetic one-line reviews"},
            "features": {"entity": "drug"},
        }
    )


def _rows(directory: Path, split: str) -> list[dict[str, Any]]:
    lines = (directory / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def test_each_row_gets_the_history_known_before_it(tmp_path: Path) -> None:
    recipe = _recipe(tmp_path, timestamp="date", extra={"drug": "drugName"})
    manifest = run_stage("prepare", recipe, tmp_path / "prepared", {})
    test = {row["fields"]["drug"]: row["context"] for row in _rows(tmp_path / "prepared", "test")}
    assert test["Zoloft"] == {
        "reviews_before": 2,
        "mean_rating_before": 7.0,
        "top_condition_before": "Depression",
    }
    # before the drug's first review, and a drug never reviewed: nothing known, all null
    assert test["Advil"] == test["Nexium"] == dict.fromkeys(test["Zoloft"])
    development = _rows(tmp_path / "prepared", "train") + _rows(tmp_path / "prepared", "validation")
    assert all("context" in row for row in development)
    # the 2030 review is in the store, yet no row dated before it sees a Pain majority for Zoloft
    assert all(
        row["context"]["top_condition_before"] != "Pain"
        for row in development
        if row["fields"]["drug"] == "Zoloft"
    )
    counts = manifest.counts
    assert counts["context_rows_with_history"] + counts["context_rows_without_history"] == sum(
        counts[split] for split in ("train", "validation", "test")
    )
    assert counts["context_rows_without_history"] >= 2  # Advil and Nexium in test
    assert "date" not in json.dumps(_rows(tmp_path / "prepared", "test"))  # time is not written


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({"extra": {"drug": "drugName"}}, "set data.columns.timestamp"),
        ({"timestamp": "date"}, "data.columns.extra as drug: <column>"),
    ],
)
def test_a_recipe_that_cannot_join_names_the_key(
    tmp_path: Path, columns: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        run_stage("prepare", _recipe(tmp_path, **columns), tmp_path / "prepared", {})
