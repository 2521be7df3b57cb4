"""Status of the custom resources, computed from what the children report (pure functions).

Conditions follow the Kubernetes convention (type, "True"/"False"/"Unknown", CamelCase
reason, message, lastTransitionTime that moves only when the status does), so
``kubectl wait --for=condition=Succeeded`` and dashboards work without knowing medops.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

TERMINAL = ("Succeeded", "Failed")
_FAILED_JOB = ("FAILED", "STOPPED")
_FAILED_DEPLOYMENT = ("Failed", "ValidationFailed")


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(
    conditions: list[dict[str, Any]],
    kind: str,
    status: bool | None,
    reason: str,
    message: str,
    at: str,
) -> list[dict[str, Any]]:
    """A new list with condition ``kind`` set; its transition time kept if status held."""
    value = {True: "True", False: "False", None: "Unknown"}[status]
    previous = next((c for c in conditions if c.get("type") == kind), None)
    moved = previous is None or previous.get("status") != value
    updated = {
        "type": kind,
        "status": value,
        "reason": reason,
        "message": message,
        "lastTransitionTime": (
            at if moved or previous is None else previous.get("lastTransitionTime", at)
        ),
    }
    return [c for c in conditions if c.get("type") != kind] + [updated]


def finetune_phase(rayjob_status: dict[str, Any]) -> str:
    """KubeRay's jobStatus / jobDeploymentStatus as a FineTune phase."""
    job = rayjob_status.get("jobStatus", "")
    deployment = rayjob_status.get("jobDeploymentStatus", "")
    if job in _FAILED_JOB or deployment in _FAILED_DEPLOYMENT:
        return "Failed"
    if job == "SUCCEEDED":
        return "Succeeded"
    if job == "RUNNING" or deployment == "Running":
        return "Running"
    return "Pending"


def mirror_rayjob(
    previous: dict[str, Any],
    rayjob: dict[str, Any],
    results: dict[str, Any] | None,
    results_note: str,
    at: str,
) -> dict[str, Any]:
    """The FineTune status for a RayJob in the state ``rayjob`` reports.

    ``results`` are the register stage's outputs (read from the volume when the job
    succeeded); when they cannot be read, ``results_note`` says why and the metrics stay
    unset rather than guessed.
    """
    reported = rayjob.get("status") or {}
    phase = finetune_phase(reported)
    status: dict[str, Any] = {
        "phase": phase,
        "rayJobName": rayjob["metadata"]["name"],
        "startTime": reported.get("startTime"),
        "endTime": reported.get("endTime"),
        "message": reported.get("message") or f"RayJob {phase.lower()}",
    }
    conditions = set_condition(
        previous.get("conditions", []),
        "Succeeded",
        {"Succeeded": True, "Failed": False}.get(phase),
        reported.get("reason") or reported.get("jobStatus") or phase,
        status["message"],
        at,
    )
    if phase == "Succeeded":
        conditions = set_condition(
            conditions,
            "ResultsRead",
            results is not None,
            "Read" if results is not None else "ResultsUnreachable",
            "metrics and gate from the register stage" if results is not None else results_note,
            at,
        )
        status.update(results or {})
        if results is None:
            status["message"] = f"RayJob succeeded; {results_note}"
    status["conditions"] = conditions
    return {key: value for key, value in status.items() if value is not None}


def read_results(run_dir: Path) -> dict[str, Any]:
    """Metrics, gate and MLflow identity from a finished run's stage directories.

    FileNotFoundError / ValueError when the register stage left nothing readable.
    """
    decision = json.loads((run_dir / "register" / "decision.json").read_text())
    evaluated = json.loads((run_dir / "evaluate" / "manifest.json").read_text())
    metrics = {
        key: float(value)
        for key, value in evaluated.get("metrics", {}).items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }
    return {
        "mlflowRunId": decision["tags"]["mlflow_run_id"],
        "modelUri": decision["model_uri"],
        "metrics": metrics,
        "gate": {"passed": bool(decision["passed"]), "reason": decision["reason"]},
    }


def deployment_phase(isvc: dict[str, Any]) -> tuple[str, str]:
    """Phase and message of a ModelDeployment from its InferenceService's Ready condition."""
    reported = isvc.get("status") or {}
    generation = isvc.get("metadata", {}).get("generation")
    if generation is not None and reported.get("observedGeneration") not in (None, generation):
        return "Deploying", "KServe has not yet reconciled the new revision"
    ready = next((c for c in reported.get("conditions", []) if c.get("type") == "Ready"), None)
    if ready is None:
        return "Deploying", "waiting for KServe to report readiness"
    if ready.get("status") == "True":
        return "Ready", "serving"
    return "Deploying", ready.get("message") or ready.get("reason") or "not ready"


def status_patch(previous: dict[str, Any], wanted: dict[str, Any]) -> dict[str, Any]:
    """A merge patch from ``previous`` to ``wanted``: fields that went away become null."""
    patch = {key: None for key in previous if key not in wanted}
    patch.update(wanted)
    return patch
