"""What a finished pipeline run says to its user: the gate, the numbers vs the baseline.

Read from the stages' typed results only (ids, counts and metrics: never record text) and
written beside the run as ``run-summary.json`` so a script can pick it up.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from medops.manifest import read_manifest
from medops.recipe import Recipe
from medops.results import Evaluated, Ran, Registered

SUMMARY = "run-summary.json"


def run_summary(recipe: Recipe, outputs: dict[str, Path]) -> dict[str, Any]:
    """Gate decision, every evaluate metric next to its baseline, row counts, stage times."""
    ran = {stage: Ran.read(path) for stage, path in outputs.items()}
    metrics = Evaluated.read(outputs["evaluate"]).metrics
    registered = Registered.read(outputs["register"])
    compared = {
        name: {"model": value, "baseline": metrics[f"baseline_{name}"]}
        for name, value in sorted(metrics.items())
        if f"baseline_{name}" in metrics
    }
    summary = {
        "recipe": recipe.name,
        "task": recipe.task,
        "recipe_hash": recipe.content_hash(),
        "gate_metric": recipe.gate.metric,
        "gate_passed": registered.gate_passed,
        "gate_reason": registered.gate_reason,
        # approval of the version (docs/governance.md); absent from older register manifests
        "approval": read_manifest(outputs["register"])["extra"].get("approval_summary"),
        "model_uri": registered.model_uri,
        "mlflow_run_id": registered.mlflow_run_id,
        "tracking_uri": registered.tracking_uri,
        "metrics": compared,
        "counts": {stage: r.counts for stage, r in ran.items() if r.counts},
        "stage_seconds": {stage: r.wall_seconds for stage, r in ran.items()},
        "outputs": {stage: str(path) for stage, path in outputs.items()},
    }
    (recipe.out / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def summary_lines(summary: dict[str, Any]) -> list[str]:
    verdict = "PASSED" if summary["gate_passed"] else "REFUSED"
    lines = [
        f"{name}: {v['model']:.4f} (baseline {v['baseline']:.4f})"
        for name, v in summary["metrics"].items()
    ]
    lines.append(f"gate {verdict}: {summary['gate_reason']}")
    if summary.get("approval"):
        lines.append(f"approval: {summary['approval']}")
    lines.append(f"model {summary['model_uri']} (MLflow run {summary['mlflow_run_id']})")
    return lines
