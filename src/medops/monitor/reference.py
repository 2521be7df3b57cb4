"""The reference side: what the served version learned from and how it answered.

Inputs are the run's prepared train split (de-identified, what the model was trained on).
Answers are the version's own answers to the held-out rows at evaluation
(``generations.jsonl`` of the generative tasks), not the gold targets: a model's biases
(a class it over-predicts) are then on both sides and are not reported as drift.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medops.data.dataset import read_labels, read_split
from medops.errors import ConfigurationError
from medops.monitor.sides import Side, category, sample, user_text
from medops.recipe import Recipe
from medops.tasks import task_of

GENERATIONS = "generations.jsonl"  # the generative tasks' evaluate output: {"id", "model"}


@dataclass(frozen=True)
class Labels:
    """The answers' label field and its classes, where the task's answers have one."""

    field: str
    classes: tuple[str, ...]


def label_field(recipe: Recipe, prepared: Path, evaluated: Path) -> Labels | None:
    """The answer field reviewers choose among the classes (the task's review hook says
    which), so no task is named here."""
    try:
        review = task_of(recipe).function("review")
    except ConfigurationError:
        return None
    fields, _ = review(recipe, prepared, evaluated)
    closed = [f for f in fields if f.options]
    return Labels(closed[0].name, tuple(read_labels(prepared))) if closed else None


def evaluated_answers(evaluated: Path | None) -> list[str]:
    path = evaluated / GENERATIONS if evaluated else None
    if path is None or not path.is_file():
        return []
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line)["model"] for line in handle if line.strip()]


def load_reference(
    recipe: Recipe, prepared: Path, evaluated: Path | None
) -> tuple[Side, Labels | None]:
    """The train split's inputs and the evaluated answers, each sampled to ``max_rows``."""
    settings = recipe.monitor.drift
    rows: list[dict[str, Any]] = list(read_split(prepared, "train"))
    texts = [row["text"] if "text" in row else user_text(row["messages"]) for row in rows]
    answers = evaluated_answers(evaluated)
    labels = label_field(recipe, prepared, evaluated) if answers and evaluated else None
    categories = [category(a, labels.field, labels.classes) for a in answers] if labels else []
    seed, limit = recipe.seed, settings.max_rows
    side = Side(
        sample(texts, limit, seed), sample(answers, limit, seed), sample(categories, limit, seed)
    )
    return side, labels
