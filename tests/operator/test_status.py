"""Status mirroring as pure functions: RayJob -> FineTune, InferenceService -> phase."""

from __future__ import annotations

import pytest

from medops.operator.status import (
    deployment_phase,
    finetune_phase,
    mirror_rayjob,
    read_results,
    set_condition,
    status_patch,
)
from tests.operator.conftest import write_run_results

T0, T1 = "2026-11-25T10:00:00Z", "2026-11-25T11:00:00Z"


def _rayjob(**status):
    return {"metadata": {"name": "condition-demo"}, "status": status}


@pytest.mark.parametrize(
    ("reported", "phase"),
    [
        ({}, "Pending"),
        ({"jobDeploymentStatus": "Initializing"}, "Pending"),
        ({"jobDeploymentStatus": "Running", "jobStatus": "PENDING"}, "Running"),
        ({"jobDeploymentStatus": "Running", "jobStatus": "RUNNING"}, "Running"),
        ({"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"}, "Succeeded"),
        ({"jobDeploymentStatus": "Complete", "jobStatus": "FAILED"}, "Failed"),
        ({"jobDeploymentStatus": "Running", "jobStatus": "STOPPED"}, "Failed"),
        ({"jobDeploymentStatus": "Failed"}, "Failed"),
        ({"jobDeploymentStatus": "ValidationFailed"}, "Failed"),
    ],
)
def test_finetune_phase_from_kuberay(reported, phase):
    assert finetune_phase(reported) == phase


def test_condition_transition_time_moves_only_with_status():
    conditions = set_condition([], "Succeeded", None, "RUNNING", "running", T0)
    same = set_condition(conditions, "Succeeded", None, "RUNNING", "still running", T1)
    assert same[0]["lastTransitionTime"] == T0 and same[0]["message"] == "still running"
    done = set_condition(same, "Succeeded", True, "SUCCEEDED", "done", T1)
    assert done == [
        {
            "type": "Succeeded",
            "status": "True",
            "reason": "SUCCEEDED",
            "message": "done",
            "lastTransitionTime": T1,
        }
    ]
    other = set_condition(done, "ResultsRead", False, "ResultsUnreachable", "no volume", T1)
    assert [c["type"] for c in other] == ["Succeeded", "ResultsRead"]


def test_running_rayjob_is_mirrored():
    status = mirror_rayjob(
        {},
        _rayjob(jobDeploymentStatus="Running", jobStatus="RUNNING", startTime=T0),
        None,
        "",
        T1,
    )
    assert status["phase"] == "Running"
    assert status["rayJobName"] == "condition-demo" and status["startTime"] == T0
    assert "endTime" not in status and "metrics" not in status
    (succeeded,) = status["conditions"]
    assert succeeded["status"] == "Unknown" and succeeded["reason"] == "RUNNING"


def test_failed_rayjob_keeps_kuberays_reason_and_message():
    reported = _rayjob(
        jobDeploymentStatus="Failed",
        jobStatus="FAILED",
        reason="AppFailed",
        message="Job failed: exit code 2",
        endTime=T1,
    )
    status = mirror_rayjob({}, reported, None, "", T1)
    assert status["phase"] == "Failed" and status["message"] == "Job failed: exit code 2"
    assert status["conditions"][0]["status"] == "False"
    assert status["conditions"][0]["reason"] == "AppFailed"


def test_results_from_the_register_stage(tmp_path):
    write_run_results(tmp_path)
    results = read_results(tmp_path)
    assert results == {
        "mlflowRunId": "abc123",
        "modelUri": "models:/condition-classifier/4",
        "metrics": {"macro_f1": 0.76, "baseline_macro_f1": 0.74, "accuracy": 0.85, "n": 169.0},
        "gate": {"passed": True, "reason": results["gate"]["reason"]},
    }
    with pytest.raises(FileNotFoundError):
        read_results(tmp_path / "missing")


def test_succeeded_rayjob_with_results(tmp_path):
    write_run_results(tmp_path)
    reported = _rayjob(jobDeploymentStatus="Complete", jobStatus="SUCCEEDED", endTime=T1)
    status = mirror_rayjob({}, reported, read_results(tmp_path), "", T1)
    assert status["phase"] == "Succeeded"
    assert status["metrics"]["macro_f1"] == 0.76 and status["gate"]["passed"] is True
    assert status["mlflowRunId"] == "abc123"
    kinds = {c["type"]: c["status"] for c in status["conditions"]}
    assert kinds == {"Succeeded": "True", "ResultsRead": "True"}


def test_succeeded_rayjob_without_results_says_so():
    reported = _rayjob(jobDeploymentStatus="Complete", jobStatus="SUCCEEDED")
    status = mirror_rayjob({}, reported, None, "metrics not mirrored: no volume", T1)
    assert "metrics" not in status and "gate" not in status
    assert status["message"] == "RayJob succeeded; metrics not mirrored: no volume"
    read = next(c for c in status["conditions"] if c["type"] == "ResultsRead")
    assert (read["status"], read["reason"]) == ("False", "ResultsUnreachable")


@pytest.mark.parametrize(
    ("isvc", "phase"),
    [
        ({}, "Deploying"),
        ({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}, "Ready"),
        (
            {"status": {"conditions": [{"type": "Ready", "status": "False", "reason": "X"}]}},
            "Deploying",
        ),
        (
            {
                "metadata": {"generation": 3},
                "status": {
                    "observedGeneration": 2,
                    "conditions": [{"type": "Ready", "status": "True"}],
                },
            },
            "Deploying",
        ),
    ],
)
def test_deployment_phase_from_kserve(isvc, phase):
    assert deployment_phase(isvc)[0] == phase


def test_status_patch_removes_fields_that_went_away():
    previous = {"phase": "Running", "message": "old", "rayJobName": "r"}
    assert status_patch(previous, {"phase": "Failed", "rayJobName": "r"}) == {
        "message": None,
        "phase": "Failed",
        "rayJobName": "r",
    }
