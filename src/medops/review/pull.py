"""``medops review pull``: the reviewers' verdicts and corrections as a versioned dataset.

Writes ``feedback.jsonl`` (one row per submitted review), ``manifest.json`` and
``FEEDBACK_CARD.md`` into a new directory. Each row keeps its lineage: the registry version
it judged, the Label Studio task and annotation ids and the reviewer's id. The text is the
de-identified text the reviewer saw, so the rows can join the next training set.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from medops.errors import MissingInputError
from medops.manifest import Manifest, sha256_path, timed, write_manifest
from medops.recipe import Recipe
from medops.review.fields import VERDICTS, ReviewField, config_fields, read_result
from medops.review.labelstudio import LabelStudio
from medops.review.push import project_title
from medops.review.store import FeedbackStore, store_url

FEEDBACK, CARD = "feedback.jsonl", "FEEDBACK_CARD.md"


def feedback_rows(tasks: list[dict[str, Any]], fields: list[ReviewField]) -> list[dict[str, Any]]:
    """One row per submitted (not skipped) annotation of a medops item."""
    rows = []
    for task in tasks:
        data = task.get("data", {})
        if "medops_id" not in data:
            continue
        proposed = {name: str(value) for name, value in data.get("medops_answer", {}).items()}
        for annotation in task.get("annotations", []):
            if annotation.get("was_cancelled"):
                continue
            reviewed = read_result(annotation.get("result", []), fields)
            rows.append(
                {
                    "id": data["medops_id"],
                    "text": data["text"],
                    "item": data.get("medops_item", {}),
                    "model_uri": data.get("model_uri"),
                    "ls_task_id": task["id"],
                    "ls_annotation_id": annotation["id"],
                    "reviewer": annotation.get("completed_by"),
                    "verdict": reviewed["verdict"],
                    "reason": reviewed["reason"],
                    "lead_time_s": annotation.get("lead_time"),
                    "reviewed_at": annotation.get("created_at"),
                    "fields": {
                        name: {
                            "model": proposed.get(name, ""),
                            "reviewed": value,
                            "accepted": value == proposed.get(name, ""),
                        }
                        for name, value in reviewed["values"].items()
                    },
                }
            )
    return rows


def agreement(rows: list[dict[str, Any]]) -> dict[str, float | int]:
    """Cohen's kappa of the verdict over items reviewed by two or more people (first two)."""
    from sklearn.metrics import cohen_kappa_score

    by_item: dict[str, list[str]] = defaultdict(list)
    for row in sorted(rows, key=lambda r: r["ls_annotation_id"]):
        by_item[row["id"]].append(row["verdict"])
    pairs = [verdicts[:2] for verdicts in by_item.values() if len(verdicts) >= 2]
    if not pairs:
        return {"items_reviewed_twice": 0}
    first, second = zip(*pairs, strict=True)
    same = sum(a == b for a, b in pairs) / len(pairs)
    kappa = (
        cohen_kappa_score(first, second, labels=list(VERDICTS))
        if len(set(first + second)) > 1
        else 1.0
    )
    return {
        "items_reviewed_twice": len(pairs),
        "verdict_agreement": same,
        "verdict_kappa": float(kappa),
    }


def _summary(rows: list[dict[str, Any]], fields: list[ReviewField]) -> dict[str, Any]:
    times = [r["lead_time_s"] for r in rows if isinstance(r["lead_time_s"], int | float)]
    return {
        "reviews": len(rows),
        "items": len({r["id"] for r in rows}),
        "reviewers": len({r["reviewer"] for r in rows}),
        "verdicts": dict(Counter(r["verdict"] for r in rows)),
        "acceptance": {
            f.name: sum(r["fields"][f.name]["accepted"] for r in rows) / len(rows) if rows else 0.0
            for f in fields
        },
        "reject_reasons": dict(Counter(r["reason"] for r in rows if r["verdict"] == "reject")),
        "median_seconds_per_item": statistics.median(times) if times else None,
        **agreement(rows),
    }


def _card(recipe: Recipe, summary: dict[str, Any], versions: list[str]) -> str:
    verdicts = ", ".join(f"{k} {v}" for k, v in sorted(summary["verdicts"].items()))
    who = f"{summary['items']} items by {summary['reviewers']} reviewers"
    lines = [
        f"# Feedback card: {recipe.name}",
        "",
        f"Clinician reviews of {', '.join(versions) or 'no version'} in Label Studio project "
        f"`{project_title(recipe)}`. Texts are the de-identified texts reviewers saw.",
        "",
        f"- reviews: {summary['reviews']} of {who}",
        f"- verdicts: {verdicts or 'none'}",
        f"- median time per item: {summary['median_seconds_per_item']} s",
        f"- items reviewed twice: {summary['items_reviewed_twice']}"
        + (
            f"; verdict agreement {summary['verdict_agreement']:.2f}, Cohen's kappa "
            f"{summary['verdict_kappa']:.2f}"
            if summary["items_reviewed_twice"]
            else ""
        ),
        "",
        "| field | accepted as the model answered |",
        "|---|---|",
        *(f"| {name} | {rate:.2f} |" for name, rate in summary["acceptance"].items()),
        "",
        "| reject reason | reviews |",
        "|---|---|",
        *(
            f"| {reason or '(none given)'} | {n} |"
            for reason, n in summary["reject_reasons"].items()
        ),
    ]
    return "\n".join(lines) + "\n"


def pull(recipe: Recipe, client: LabelStudio, out_dir: Path) -> Manifest:
    """Export the project's reviews into ``out_dir`` (a new feedback dataset version)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(stage="review-pull", recipe_hash=recipe.content_hash())
    with timed(manifest):
        found = client.find_project(project_title(recipe))
        if found is None:
            raise MissingInputError(
                f"Label Studio has no project {project_title(recipe)!r}: run "
                "`medops review push` first"
            )
        project, fields = int(found["id"]), config_fields(found.get("label_config", ""))
        rows = feedback_rows(client.export(project), fields)
        (out_dir / FEEDBACK).write_text(
            "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8"
        )
        summary = _summary(rows, fields)
        versions = sorted({str(r["model_uri"]) for r in rows})
        (out_dir / CARD).write_text(_card(recipe, summary, versions), encoding="utf-8")
        manifest.outputs = {"feedback": FEEDBACK, "card": CARD}
        manifest.counts = {"reviews": summary["reviews"], "items": summary["items"]}
        manifest.metrics = {f"acceptance_{k}": v for k, v in summary["acceptance"].items()}
        stored = FeedbackStore(store_url(recipe)).record(
            project_title(recipe), rows, str(out_dir.resolve())
        )
        manifest.counts["stored"] = stored
        manifest.extra = {
            "project": project,
            "model_uris": versions,
            "summary": summary,
            "dataset_hash": sha256_path(out_dir / FEEDBACK),
        }
    write_manifest(manifest, out_dir)
    return manifest
