"""What clinicians review for a classifier: the predicted label, correctable among the classes."""

from __future__ import annotations

import json
from pathlib import Path

from medops.data.dataset import read_labels, read_split
from medops.recipe import Recipe
from medops.review.fields import ReviewField, ReviewItem


def review_items(
    recipe: Recipe, prepared: Path, evaluated: Path
) -> tuple[list[ReviewField], list[ReviewItem]]:
    lines = (evaluated / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
    predicted = {r["id"]: r["predicted"] for r in map(json.loads, lines)}
    fields = [ReviewField("label", tuple(read_labels(prepared)))]
    items = [
        ReviewItem(row["id"], row["text"], {"label": predicted[row["id"]]})
        for row in read_split(prepared, "test")
        if row["id"] in predicted
    ]
    return fields, items
