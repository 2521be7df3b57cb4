"""The drift CronJob (``drift.enabled``): rendered by the real Helm, valid, restricted, with
an identity that can do nothing in the API, fenced by a network policy, off by default."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.charts.test_chart import KUBE_VERSION
from tests.support.helm import API_SERVER, CHART, run_helm

ENABLED = [
    *API_SERVER,
    "--set",
    "networkPolicy.storageCIDRs={10.1.0.0/24}",
    "--set",
    "drift.enabled=true",
    "--set",
    "drift.recipeConfigMap=extraction-recipe",
    "--set",
    "drift.dataClaim=medops-runs",
    "--set",
    "drift.feedbackDatabaseSecret=medops-feedback-db",
]


def render(helm: str, *args: str) -> list[dict[str, Any]]:
    done = run_helm(
        helm,
        "template",
        "medops",
        str(CHART),
        "--namespace",
        "medops-system",
        "--kube-version",
        KUBE_VERSION,
        *args,
    )
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def drift_objects(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["kind"]: d for d in docs if d["metadata"]["name"] == "medops-drift"}


def test_off_by_default(helm):
    assert drift_objects(render(helm, *API_SERVER)) == {}


def test_the_cronjob_runs_medops_drift_on_the_schedule(helm):
    objects = drift_objects(render(helm, *ENABLED, "--set", "drift.schedule=30 2 * * 1"))
    assert set(objects) == {"ServiceAccount", "CronJob", "NetworkPolicy"}
    for doc in objects.values():
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
    cron = objects["CronJob"]
    assert cron["spec"]["schedule"] == "30 2 * * 1"
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    job = cron["spec"]["jobTemplate"]["spec"]
    (rule,) = job["podFailurePolicy"]["rules"]
    assert rule["action"] == "FailJob" and rule["onExitCodes"]["values"] == [1, 2]
    pod = job["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"].startswith("registry.example.org/medops/medops:")
    assert container["command"] == ["medops"]
    assert container["args"] == [
        "drift",
        "/etc/medops/recipe/recipe.yaml",
        "--prepared",
        "/data/prepare",
        "--evaluated",
        "/data/evaluate",
        "--since",
        "7d",
        "--out",
        "/reports",
    ]
    database = next(e for e in container["env"] if e["name"] == "MEDOPS_FEEDBACK_DB")
    assert database["valueFrom"]["secretKeyRef"] == {"name": "medops-feedback-db", "key": "url"}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert mounts["/data"]["readOnly"] and mounts["/etc/medops/recipe"]["readOnly"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"] == {
        "claimName": "medops-runs",
        "readOnly": True,
    }
    assert volumes["reports"]["emptyDir"]["sizeLimit"]


def test_the_job_is_restricted_and_its_identity_has_no_api_access(helm):
    docs = render(helm, *ENABLED)
    objects = drift_objects(docs)
    pod = objects["CronJob"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "medops-drift"
    assert pod["automountServiceAccountToken"] is False
    assert objects["ServiceAccount"]["automountServiceAccountToken"] is False
    bound = [
        d
        for d in docs
        if d["kind"] in ("RoleBinding", "ClusterRoleBinding")
        and any(s.get("name") == "medops-drift" for s in d.get("subjects", []))
    ]
    assert bound == []
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    context = container["securityContext"]
    assert context["readOnlyRootFilesystem"] is True and context["capabilities"] == {
        "drop": ["ALL"]
    }
    assert {"cpu", "memory"} <= set(container["resources"]["limits"])


def test_the_network_policy_opens_only_the_feedback_database(helm):
    docs = render(helm, *ENABLED)
    labels = drift_objects(docs)["CronJob"]["spec"]["jobTemplate"]["spec"]["template"]["metadata"][
        "labels"
    ]
    selecting = [
        p
        for p in docs
        if p["kind"] == "NetworkPolicy"
        and p["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    ]
    assert {p["metadata"]["name"] for p in selecting} == {"medops-default-deny", "medops-drift"}
    own = drift_objects(docs)["NetworkPolicy"]["spec"]
    assert "ingress" not in own
    assert own["egress"] == [
        {"to": [{"ipBlock": {"cidr": "10.1.0.0/24"}}], "ports": [{"protocol": "TCP", "port": 5432}]}
    ]


def test_a_report_claim_keeps_the_reports(helm):
    docs = render(
        helm,
        *ENABLED,
        "--set",
        "drift.reportClaim=medops-drift-reports",
        "--set",
        "drift.evaluated=",
        "--set",
        "drift.since=",
    )
    pod = drift_objects(docs)["CronJob"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["reports"] == {
        "name": "reports",
        "persistentVolumeClaim": {"claimName": "medops-drift-reports"},
    }
    args = pod["containers"][0]["args"]
    assert "--evaluated" not in args and "--since" not in args  # the recipe's window then


@pytest.mark.parametrize(
    ("unset", "complaint"),
    [
        ("drift.recipeConfigMap", "drift.recipeConfigMap is empty"),
        ("drift.dataClaim", "drift.dataClaim is empty"),
        ("drift.feedbackDatabaseSecret", "drift.feedbackDatabaseSecret is empty"),
        ("networkPolicy.storageCIDRs", "needs networkPolicy.storageCIDRs"),
    ],
)
def test_missing_settings_are_clear_errors(helm, unset, complaint):
    done = run_helm(helm, "template", "medops", str(CHART), *ENABLED, "--set", f"{unset}=null")
    assert done.returncode != 0 and complaint in done.stderr


@pytest.mark.parametrize(
    "setting", ["drift.since=last week", "drift.prepared=/etc", "drift.activeDeadlineSeconds=5"]
)
def test_the_values_schema_refuses_bad_drift_values(helm, setting):
    done = run_helm(helm, "template", "medops", str(CHART), *ENABLED, "--set", setting)
    assert done.returncode != 0
    assert "values don't meet the specifications of the schema" in done.stderr


def test_helm_lint_strict_with_drift_on(helm):
    done = run_helm(helm, "lint", "--strict", str(CHART), *ENABLED)
    assert done.returncode == 0, done.stdout + done.stderr
