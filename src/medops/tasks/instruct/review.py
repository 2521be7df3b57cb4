"""What clinicians review for a chat model: its answer to the held-out conversation."""

from __future__ import annotations

import json
import typing
from pathlib import Path

from medops.data.dataset import read_split
from medops.review.fields import ReviewField, ReviewItem, conversation_text
from medops.tasks.instruct.examples import prompt_and_reference
from medops.tasks.instruct.recipe import InstructRecipe


def review_items(
    recipe: InstructRecipe, prepared: Path, evaluated: Path
) -> tuple[list[ReviewField], list[ReviewItem]]:
    lines = (evaluated / "generations.jsonl").read_text(encoding="utf-8").splitlines()
    answers = {r["id"]: r["model"] for r in map(json.loads, lines)}
    items = []
    for row in read_split(prepared, "test"):
        if row["id"] in answers:
            prompt, _ = prompt_and_reference(typing.cast(list, row["messages"]))
            answer = {"answer": answers[row["id"]]}
            items.append(
                ReviewItem(row["id"], conversation_text(prompt), answer, {"messages": prompt})
            )
    return [ReviewField("answer")], items
