"""A resource author's free choice of image, ServiceAccount and Secret (issue 22, finding 2):
refused with a condition naming the field and the chart value, before any child exists."""

from __future__ import annotations

import asyncio

import pytest

from medops.operator.allowlist import Allowlist, NotAllowed, image_allowed
from medops.operator.reconcile import reconcile_deployment, reconcile_finetune
from tests.operator.test_kopf_kmock import ISVCS, NS, RAYJOBS, cluster

__all__ = ["cluster"]
CHART = {
    "MEDOPS_ALLOWED_IMAGE_PREFIXES": "registry.example.org/medops/",
    "MEDOPS_ALLOWED_SERVICE_ACCOUNTS": "",
    "MEDOPS_ALLOWED_CREDENTIAL_REFS": "medops-mlflow-credentials",
    "MEDOPS_ALLOWED_TRACKING_URIS": "http://medops-mlflow.medops-system.svc:5000",
    "MEDOPS_ALLOWED_CLAIM_PATTERN": "^medops-[a-z0-9.-]*$",
}


@pytest.fixture
def chart_allowlist(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in CHART.items():
        monkeypatch.setenv(name, value)


def _refusal(status: dict) -> dict:
    return next(c for c in status["conditions"] if c["type"] == "SpecAllowed")


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("image", "docker.io/attacker/miner:1", "operator.allowedImages"),
        ("image", "registry.example.org/medops-evil/medops:1", "operator.allowedImages"),
        ("serviceAccountName", "cluster-admin-sa", "operator.allowedServiceAccounts"),
        ("secretRef", "cloud-root-credentials", "operator.allowedSecrets"),
    ],
)
@pytest.mark.asyncio
async def test_a_finetune_naming_a_foreign_image_account_or_secret_gets_no_rayjob(
    cluster, finetune, chart_allowlist, field, value, needle
):
    if field == "secretRef":
        finetune["spec"]["mlflow"]["secretRef"] = value
    else:
        finetune["spec"][field] = value
    status = await asyncio.to_thread(reconcile_finetune, finetune)
    refused = _refusal(status)
    assert (refused["status"], refused["reason"]) == ("False", "NotAllowed")
    assert needle in refused["message"] and status["phase"] == "Failed"
    assert not [key for key in cluster.objects if key[0] == RAYJOBS and key[1] == NS]


@pytest.mark.asyncio
async def test_a_deployment_with_a_foreign_image_gets_no_inferenceservice(
    cluster, deployment, chart_allowlist
):
    deployment["spec"]["image"] = "docker.io/attacker/miner:1"
    status = await asyncio.to_thread(reconcile_deployment, deployment)
    assert "operator.allowedImages" in _refusal(status)["message"]
    assert not [key for key in cluster.objects if key[0] == ISVCS]


def test_allowed_values_pass_and_prefixes_match_whole_repositories():
    allowlist = Allowlist.from_env(CHART)
    allowlist.check(
        {
            "image": "registry.example.org/medops/medops-gpu:0.1.0",
            "mlflow": {"secretRef": "medops-mlflow-credentials"},
        }
    )
    exact = frozenset({"ghcr.io/medops/medops-cpu"})
    assert image_allowed("ghcr.io/medops/medops-cpu@sha256:" + "a" * 64, exact)
    assert not image_allowed("ghcr.io/medops/medops-cpu-evil:1", exact)
    with pytest.raises(NotAllowed, match="leave it out"):
        allowlist.check({"serviceAccountName": "default"})


def test_a_finetune_may_mount_only_the_claims_the_pattern_allows():
    allowlist = Allowlist.from_env(CHART)
    allowlist.check({"storage": {"pvc": "medops-runs"}})
    for claim in ("radiology-archive", "x-medops-runs", "medops-runs/../etc"):
        with pytest.raises(NotAllowed, match="operator.allowedClaimPattern"):
            allowlist.check({"storage": {"pvc": claim}})
