"""The chart's MLflow: basic-auth with medops' guard, one Secret per identity, and a
NetworkPolicy that admits medops pods only from the namespaces the chart names."""

from __future__ import annotations

from tests.charts.test_chart import (  # noqa: F401  (rendered: the fixture)
    _pod_spec,
    find,
    rendered,
)
from tests.support.helm import API_SERVER, CHART, run_helm


def _env(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


def test_mlflow_runs_basic_auth_denying_by_default_with_the_guard(rendered):  # noqa: F811
    config = find(rendered, "default", "ConfigMap", "medops-mlflow-auth")
    ini = dict(line.split(" = ", 1) for line in config["data"]["basic_auth.ini"].splitlines()[1:])
    assert ini["default_permission"] == "NO_PERMISSIONS"
    assert ini["authorization_function"] == "medops.registry.permissions:authenticate"
    assert (
        "@" in ini["database_uri"] and ":" not in ini["database_uri"].split("//")[1].split("@")[0]
    )
    server = _pod_spec(find(rendered, "default", "Deployment", "medops-mlflow"))["containers"][0]
    assert "--app-name=basic-auth" in server["args"]
    env = _env(server)
    admin = {"name": "medops-mlflow-admin"}
    for name, key in (
        ("MLFLOW_AUTH_ADMIN_USERNAME", "username"),
        ("MLFLOW_AUTH_ADMIN_PASSWORD", "password"),
        ("MLFLOW_FLASK_SERVER_SECRET_KEY", "secretKey"),
    ):
        assert env[name]["valueFrom"]["secretKeyRef"] == {**admin, "key": key}
    assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "medops-mlflow-auth-db"


def test_each_identity_signs_in_from_its_own_secret(rendered):  # noqa: F811
    job = _pod_spec(find(rendered, "default", "Job", "medops-mlflow-access"))["containers"][0]
    env = _env(job)
    assert job["command"] == ["medops", "registry-access"]
    assert env["MLFLOW_TRACKING_USERNAME"]["valueFrom"]["secretKeyRef"]["name"] == (
        "medops-mlflow-admin"
    )
    for role, secret in (
        ("PIPELINE", "medops-mlflow-credentials"),
        ("APPROVER", "medops-mlflow-approver"),
        ("OPERATOR", "medops-mlflow-operator"),
    ):
        for part in ("USERNAME", "PASSWORD"):
            ref = env[f"MEDOPS_MLFLOW_{role}_{part}"]["valueFrom"]["secretKeyRef"]
            assert ref == {"name": secret, "key": f"MLFLOW_TRACKING_{part}"}
    operator = _pod_spec(find(rendered, "default", "Deployment", "medops-operator"))
    assert operator["containers"][0]["envFrom"] == [
        {"secretRef": {"name": "medops-mlflow-operator"}}
    ]
    # the pipeline's Secret is the one FineTunes may name
    assert "medops-mlflow-credentials" in _env(
        _pod_spec(find(rendered, "default", "Deployment", "medops-operator"))["containers"][0]
    )["MEDOPS_ALLOWED_CREDENTIAL_REFS"]["value"].split(",")


def test_mlflow_admits_medops_pods_only_from_the_charts_namespaces(rendered):  # noqa: F811
    for values, namespaces in (
        ("default", ["medops-system", "medops-runs"]),
        ("clusterwide", ["medops-system"]),
    ):
        policy = find(rendered, values, "NetworkPolicy", "medops-mlflow")
        peers = policy["spec"]["ingress"][0]["from"]
        assert all(p["namespaceSelector"] for p in peers), values  # never {}: every namespace
        [expression] = peers[0]["namespaceSelector"]["matchExpressions"]
        assert expression == {
            "key": "kubernetes.io/metadata.name",
            "operator": "In",
            "values": namespaces,
        }
        assert all(
            p["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "medops"} for p in peers
        )
    labelled = find(rendered, "clusterwide", "NetworkPolicy", "medops-mlflow")["spec"]["ingress"]
    assert labelled[0]["from"][1]["namespaceSelector"] == {
        "matchLabels": {"medops.dev/registry-client": "true"}
    }


def test_the_auth_database_url_carries_no_password(helm):
    bad = "mlflow.auth.database.url=postgresql://auth:hunter2@db:5432/auth"
    done = run_helm(helm, "template", "medops", str(CHART), *API_SERVER, "--set", bad)
    assert done.returncode != 0 and "url" in done.stderr
    off = run_helm(
        helm, "template", "medops", str(CHART), *API_SERVER, "--set", "mlflow.auth.enabled=false"
    )
    assert off.returncode == 0, off.stderr
    assert "basic-auth" not in off.stdout and "registry-access" not in off.stdout
