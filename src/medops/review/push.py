"""``medops review push``: held-out items and the registered version's answers to Label Studio.

The items are the prepared (de-identified) test split; the answers are the ones the
registered version gave at evaluation, read from the run's evaluate stage, so nothing is
re-generated and the pre-annotation is exactly what was scored. An item already in the
project for the same version is not imported twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medops.errors import MissingInputError
from medops.recipe import Recipe
from medops.review.fields import ReviewField, ReviewItem, label_config, prediction
from medops.review.labelstudio import LabelStudio
from medops.tasks import task_of

SUMMARY = "run-summary.json"


@dataclass(frozen=True)
class RunOutputs:
    """What one ``medops run`` left: its prepared and evaluated directories and the version."""

    prepared: Path
    evaluated: Path
    model_uri: str

    @classmethod
    def read(cls, summary: Path) -> RunOutputs:
        if not summary.is_file():
            raise MissingInputError(
                f"{summary} does not exist: run the pipeline first (medops run RECIPE), or "
                "pass --run-summary with the run's run-summary.json"
            )
        data = json.loads(summary.read_text(encoding="utf-8"))
        outputs = data["outputs"]
        return cls(Path(outputs["prepare"]), Path(outputs["evaluate"]), data["model_uri"])


def project_title(recipe: Recipe) -> str:
    return f"medops {recipe.name} ({recipe.task})"


def review_set(recipe: Recipe, run: RunOutputs) -> tuple[list[ReviewField], list[ReviewItem]]:
    return task_of(recipe).function("review")(recipe, run.prepared, run.evaluated)


def _task(
    item: ReviewItem, fields: list[ReviewField], model_uri: str, recipe: Recipe
) -> dict[str, Any]:
    data = {
        "text": item.text,
        "medops_id": item.id,
        "medops_answer": item.answer,  # the export lists predictions by id only
        "medops_item": item.context,
        "model_uri": model_uri,
        "recipe": recipe.name,
    }
    return {"data": data, "predictions": [prediction(item, fields, model_uri)]}


def push(recipe: Recipe, run: RunOutputs, client: LabelStudio, limit: int | None) -> dict[str, Any]:
    """Create or update the project and import up to ``limit`` new items; returns counts."""
    fields, items = review_set(recipe, run)
    project = client.ensure_project(project_title(recipe), label_config(fields))
    present = {
        (t["data"].get("medops_id"), t["data"].get("model_uri"))
        for t in client.export(project, with_unlabeled=True)
    }
    new = [i for i in items if (i.id, run.model_uri) not in present][:limit]
    if new:
        client.import_tasks(project, [_task(i, fields, run.model_uri, recipe) for i in new])
    client.prefill_with(project, run.model_uri)
    return {
        "project": project,
        "model_uri": run.model_uri,
        "pushed": len(new),
        "already_in_project": sum((i.id, run.model_uri) in present for i in items),
        "available": len(items),
    }
