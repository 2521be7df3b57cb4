"""``medops review push``: items and a registered version's answers to Label Studio.

``--from test``: the prepared (de-identified) test split and the answers the registered
version gave at evaluation, read from the run's evaluate stage, so nothing is re-generated
and the pre-annotation is exactly what was scored. ``--from traffic``: the chats the server
queued (de-identified turns and released answers). An item already in the project for the
same version is not imported twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medops.errors import MissingInputError
from medops.recipe import Recipe
from medops.review.fields import (
    ReviewField,
    ReviewItem,
    conversation_text,
    label_config,
    prediction,
)
from medops.review.labelstudio import LabelStudio
from medops.review.store import FeedbackStore, store_url
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
        outputs = data.get("outputs") if isinstance(data, dict) else None
        if not isinstance(outputs, dict) or not {"prepare", "evaluate"} <= outputs.keys():
            raise MissingInputError(
                f"{summary} is not a run summary (no outputs.prepare / outputs.evaluate): "
                f"pass the {SUMMARY} that `medops run` or `medops demo` wrote in the run's "
                "output_dir"
            )
        return cls(Path(outputs["prepare"]), Path(outputs["evaluate"]), data["model_uri"])


def project_title(recipe: Recipe) -> str:
    return f"medops {recipe.name} ({recipe.task})"


def review_set(recipe: Recipe, run: RunOutputs) -> tuple[list[ReviewField], list[ReviewItem]]:
    return task_of(recipe).function("review")(recipe, run.prepared, run.evaluated)


Batch = tuple[list[ReviewField], list[tuple[ReviewItem, str]]]  # fields, (item, model URI)


def from_run(recipe: Recipe, run: RunOutputs) -> Batch:
    """``--from test``: the held-out items and the answers the run's version gave them."""
    fields, items = review_set(recipe, run)
    return fields, [(item, run.model_uri) for item in items]


def from_traffic(recipe: Recipe) -> Batch:
    """``--from traffic``: chats the server queued (``serve.review_queue``), unexpired."""
    rows = FeedbackStore(store_url(recipe)).queued()
    items = [
        (
            ReviewItem(
                f"traffic-{row['id']}",
                conversation_text(row["messages"]),
                {"answer": row["answer"]},
                {"messages": row["messages"]},
            ),
            row["model_uri"],
        )
        for row in rows
    ]
    return [ReviewField("answer")], items


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


def push(recipe: Recipe, batch: Batch, client: LabelStudio, limit: int | None) -> dict[str, Any]:
    """Create or update the project and import up to ``limit`` new items; returns counts."""
    fields, items = batch
    project = client.ensure_project(project_title(recipe), label_config(fields))
    present = {
        (t["data"].get("medops_id"), t["data"].get("model_uri"))
        for t in client.export(project, with_unlabeled=True)
    }
    new = [(i, uri) for i, uri in items if (i.id, uri) not in present][:limit]
    if new:
        client.import_tasks(project, [_task(i, fields, uri, recipe) for i, uri in new])
    versions = sorted({uri for _, uri in items})
    if len(versions) == 1:
        client.prefill_with(project, versions[0])
    return {
        "project": project,
        "model_uris": versions,
        "pushed": len(new),
        "already_in_project": sum((i.id, uri) in present for i, uri in items),
        "available": len(items),
    }
