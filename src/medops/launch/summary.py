"""What a finished pipeline run says to its user: the gate, the numbers vs the baseline.

Read from the stage manifests only (ids, counts and metrics: never record text) and
written beside the run as ``run-summary.json`` so a script can pick it up.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from medops.manifest import read_manifest
from medops.recipe import Recipe

SUMMARY = "run-summary.json"


def run_summary(recipe: Recipe, outputs: dict[str, Path]) -> dict[str, Any]:
    """Gate decision, every evaluate metric next to its baseline, row counts, stage times."""
    manifests = {stage: read_manifest(path) for stage, path in outputs.items()}
    metrics = manifests["evaluate"]["metrics"]
    registered = manifests["register"]["extra"]
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
        "gate_passed": registered["gate_passed"],
        "gate_reason": registered["gate_reason"],
        "model_uri": registered["model_uri"],
        "mlflow_run_id": registered["mlflow_run_id"],
        "tracking_uri": registered["tracking_uri"],
        "metrics": compared,
        "counts": {stage: m["counts"] for stage, m in manifests.items() if m["counts"]},
        "stage_seconds": {stage: m["wall_seconds"] for stage, m in manifests.items()},
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
    lines.append(f"model {summary['model_uri']} (MLflow run {summary['mlflow_run_id']})")
    return lines
