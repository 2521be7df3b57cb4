"""What clinicians review for extraction: each generated field, the label field among the
classes, the others as free text."""

from __future__ import annotations

import json
from pathlib import Path

from medops.data.dataset import read_labels, read_split
from medops.evaluate.generation_metrics import parse_answer
from medops.review.fields import ReviewField, ReviewItem
from medops.tasks.causal_lm.recipe import CausalLMRecipe


def review_items(
    recipe: CausalLMRecipe, prepared: Path, evaluated: Path
) -> tuple[list[ReviewField], list[ReviewItem]]:
    lines = (evaluated / "generations.jsonl").read_text(encoding="utf-8").splitlines()
    answers = {r["id"]: parse_answer(r["model"]) or {} for r in map(json.loads, lines)}
    classes = tuple(read_labels(prepared))
    fields = [ReviewField(f.name, classes if f.source == "label" else ()) for f in recipe.lm.fields]
    items = [
        ReviewItem(
            row["id"],
            row["text"],
            {f.name: str(answers[row["id"]].get(f.name, "")) for f in fields},
        )
        for row in read_split(prepared, "test")
        if row["id"] in answers
    ]
    return fields, items
