"""The chart's ValidatingAdmissionPolicy refuses what the operator's allowlists refuse.

Its CEL is evaluated here with cel-expr-python (the CEL runtime the API server's cel-go
implements the same language as), on the policy Helm renders, against the same specs the
operator's own checks see: for each, admission and operator must agree. The test API
server (1.20) has no admission policies, so this is where the policy's logic is tested.
"""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
import yaml
from cel_expr_python import cel

from medops.operator.allowlist import Allowlist, NotAllowed
from medops.operator.registry import ALLOWED_ENV, RegistryError, check_tracking_uri
from tests.support.helm import API_SERVER, CHART, run_helm

KUBE_VERSION = "1.31.0"
POLICY_API = "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy"
VALUES = [
    *API_SERVER,
    "--set",
    "operator.allowedImages={ghcr.io/hospital/medops-custom,ghcr.io/hospital/ml/}",
    "--set",
    "operator.allowedServiceAccounts={trainer}",
    "--set",
    "operator.allowedTrackingUris={https://mlflow.hospital.example}",
]
OWN = "registry.example.org/medops/medops-cpu:0.1.0"
GOOD = {"image": OWN, "mlflow": {"trackingUri": "https://mlflow.hospital.example/"}}
SPECS: list[tuple[str, dict[str, Any]]] = [
    ("nothing named", {}),
    ("the chart's image", GOOD),
    ("a digest of an allowed repository", {"image": "ghcr.io/hospital/medops-custom@sha256:ab"}),
    ("below an allowed path", {"image": "ghcr.io/hospital/ml/trainer:2"}),
    (
        "an allowed ServiceAccount and Secret",
        {"serviceAccountName": "trainer", "mlflow": {"secretRef": "medops-mlflow-credentials"}},
    ),
    ("a foreign image", {"image": "docker.io/attacker/miner:latest"}),
    ("a repository that only starts alike", {"image": "ghcr.io/hospital/medops-custom-evil:1"}),
    ("a foreign ServiceAccount", {"serviceAccountName": "cluster-admin-sa"}),
    ("a foreign Secret", {"mlflow": {"secretRef": "database-root"}}),
    ("a foreign registry", {"mlflow": {"trackingUri": "http://attacker.example:8080"}}),
    ("a claim of the platform", {"storage": {"pvc": "medops-runs"}}),
    ("a foreign claim", {"storage": {"pvc": "radiology-archive"}}),
    ("a foreign claim that contains an allowed name", {"storage": {"pvc": "x-medops-runs"}}),
]


def _render(helm: str, *extra: str) -> list[dict[str, Any]]:
    args = ["--namespace", "medops-system", "--kube-version", KUBE_VERSION, *extra]
    done = run_helm(helm, "template", "medops", str(CHART), *args, *VALUES)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture(scope="module")
def policy(helm: str) -> dict[str, Any]:
    docs = _render(helm, "--api-versions", POLICY_API)
    found = {doc["kind"]: doc for doc in docs if doc["kind"].startswith("ValidatingAdmission")}
    assert set(found) == {"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"}
    for doc in found.values():
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
    binding = found["ValidatingAdmissionPolicyBinding"]["spec"]
    assert binding["validationActions"] == ["Deny"]
    assert binding["policyName"] == found["ValidatingAdmissionPolicy"]["metadata"]["name"]
    return found["ValidatingAdmissionPolicy"]


def admitted(policy: dict[str, Any], spec: dict[str, Any]) -> list[str]:
    """The messages of the validations ``spec`` fails, as the API server would evaluate."""
    env = cel.NewEnv(variables={"object": cel.Type.DYN, "variables": cel.Type.DYN})
    variables = {
        v["name"]: env.compile(v["expression"]).eval(data={}).value()
        for v in policy["spec"]["variables"]
    }
    plain = {
        name: [item.value() for item in value] if isinstance(value, list) else value
        for name, value in variables.items()
    }
    data = {"object": {"spec": spec}, "variables": plain}
    return [
        rule["message"]
        for rule in policy["spec"]["validations"]
        if env.compile(rule["expression"]).eval(data=data).value() is not True
    ]


def operator_refuses(env: dict[str, str], spec: dict[str, Any], monkeypatch) -> bool:
    monkeypatch.setenv(ALLOWED_ENV, env["MEDOPS_ALLOWED_TRACKING_URIS"])
    try:
        Allowlist.from_env(env).check(spec)
        uri = (spec.get("mlflow") or {}).get("trackingUri")
        if uri:
            check_tracking_uri(uri)
    except (NotAllowed, RegistryError):
        return True
    return False


@pytest.fixture(scope="module")
def operator_env(helm: str) -> dict[str, str]:
    docs = _render(helm)
    deployment = next(d for d in docs if d["kind"] == "Deployment" and "operator" in str(d))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e["value"] for e in container["env"] if "value" in e}


@pytest.mark.parametrize(("what", "spec"), SPECS, ids=[what for what, _ in SPECS])
def test_admission_and_operator_agree(policy, operator_env, what, spec, monkeypatch):
    refused = admitted(policy, spec)
    assert bool(refused) == operator_refuses(operator_env, spec, monkeypatch), what
    expected = what.startswith(("a foreign", "a repository that only"))
    assert bool(refused) == expected, f"{what}: {refused}"
    if refused:
        assert len(refused) == 1 and "operator.allowed" in refused[0]  # names the chart value


def test_no_policy_where_the_api_server_has_none(helm):
    kinds = {doc["kind"] for doc in _render(helm)}  # no policy API offered: 1.20-1.29 servers
    assert "ValidatingAdmissionPolicy" not in kinds
    off = _render(helm, "--api-versions", POLICY_API, "--set", "operator.admissionPolicy=false")
    assert "ValidatingAdmissionPolicy" not in {doc["kind"] for doc in off}
