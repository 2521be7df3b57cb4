"""What a finished pipeline run says to its user: the gate, the numbers vs the baseline.

Read from the stages' typed results only (ids, counts and metrics: never record text) and
written beside the run as ``run-summary.json`` so a script can pick it up.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from medops.evaluate.verdict import Comparison
from medops.manifest import read_manifest
from medops.recipe import Recipe
from medops.results import Evaluated, Ran, Registered

SUMMARY = "run-summary.json"
_CI = ("_ci_low", "_ci_high")


def _interval(metrics: dict[str, float], key: str) -> list[float] | None:
    low, high = (metrics.get(f"{key}{suffix}") for suffix in _CI)
    return None if low is None or high is None else [low, high]


def _compared(metrics: dict[str, float], name: str) -> dict[str, Any]:
    """A metric beside its baseline, with the intervals and the paired verdict where the
    evaluate stage computed them."""
    entry: dict[str, Any] = {"model": metrics[name], "baseline": metrics[f"baseline_{name}"]}
    for side, key in (("model", name), ("baseline", f"baseline_{name}")):
        if (interval := _interval(metrics, key)) is not None:
            entry[f"{side}_ci"] = interval
    comparison = Comparison.read(metrics, name, "baseline")
    if comparison is not None:
        entry["difference"] = comparison.difference
        entry["difference_ci"] = [comparison.ci_low, comparison.ci_high]
        entry["verdict"] = comparison.verdict
        entry["text"] = comparison.text()
    return entry


def _metric_line(name: str, entry: dict[str, Any]) -> str:
    """``macro_f1: 0.7550 [0.7010, 0.8020] (baseline 0.7370): not distinguishable (...)``."""

    def shown(side: str) -> str:
        ci = entry.get(f"{side}_ci")
        return f"{entry[side]:.4f}" + (f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "")

    line = f"{name}: {shown('model')} (baseline {shown('baseline')})"
    return f"{line}: {entry['text'].partition(': ')[2]}" if "text" in entry else line


def run_summary(recipe: Recipe, outputs: dict[str, Path]) -> dict[str, Any]:
    """Gate decision, every evaluate metric next to its baseline (with intervals and the
    worded paired verdict where computed), row counts, stage times."""
    ran = {stage: Ran.read(path) for stage, path in outputs.items()}
    metrics = Evaluated.read(outputs["evaluate"]).metrics
    registered = Registered.read(outputs["register"])
    compared = {
        name: _compared(metrics, name)
        for name in sorted(metrics)
        if f"baseline_{name}" in metrics and not name.endswith(_CI)
    }
    register_extra = read_manifest(outputs["register"])["extra"]
    summary = {
        "recipe": recipe.name,
        "task": recipe.task,
        "recipe_hash": recipe.content_hash(),
        "gate_metric": recipe.gate.metric,
        "gate_passed": registered.gate_passed,
        "gate_reason": registered.gate_reason,
        # the gate's worded comparisons; absent from older register manifests
        "gate_verdicts": register_extra.get("gate_verdicts", []),
        # approval of the version (docs/governance.md); absent from older register manifests
        "approval": register_extra.get("approval_summary"),
        "model_uri": registered.model_uri,
        "mlflow_run_id": registered.mlflow_run_id,
        "tracking_uri": registered.tracking_uri,
        "metrics": compared,
        # with context features: the gate's metric against the same model without them
        "context_verdict": (
            c.text() if (c := Comparison.read(metrics, recipe.gate.metric, "text_only")) else None
        ),
        "counts": {stage: r.counts for stage, r in ran.items() if r.counts},
        "stage_seconds": {stage: r.wall_seconds for stage, r in ran.items()},
        "outputs": {stage: str(path) for stage, path in outputs.items()},
    }
    (recipe.out / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def summary_lines(summary: dict[str, Any]) -> list[str]:
    verdict = "PASSED" if summary["gate_passed"] else "REFUSED"
    lines = [_metric_line(name, entry) for name, entry in summary["metrics"].items()]
    if summary.get("context_verdict"):
        lines.append(f"context features: {summary['context_verdict']}")
    lines.append(f"gate {verdict}: {summary['gate_reason']}")
    if summary.get("approval"):
        lines.append(f"approval: {summary['approval']}")
    lines.append(f"model {summary['model_uri']} (MLflow run {summary['mlflow_run_id']})")
    return lines
