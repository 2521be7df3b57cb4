"""The chart's Feast: one feature_store.yaml (SQL registry on PostgreSQL, duckdb offline,
Redis online) as a ConfigMap where its readers run, passwords only from Secrets, the
operator told which ConfigMap and Secrets to hand predictors, and a fenced feature server."""

from __future__ import annotations

from typing import Any

import yaml

from tests.charts.test_chart import find
from tests.support.helm import API_SERVER, CHART, run_helm

FEAST = [
    *API_SERVER,
    "--set",
    "feast.enabled=true",
    "--set",
    "feast.project=extraction_demo",
    "--set",
    "feast.redis.existingSecret=medops-redis",
    "--set",
    "operator.watchNamespaces={medops-runs,oncology}",
]


def render(helm: str, *args: str) -> list[dict[str, Any]]:
    done = run_helm(helm, "template", "medops", str(CHART), "-n", "medops-system", *args)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def _operator_env(docs: list[dict[str, Any]]) -> dict[str, Any]:
    operator = find({"x": docs}, "x", "Deployment", "medops-operator")
    (container,) = operator["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value") for e in container["env"]}


def test_the_store_config_is_rendered_where_the_feature_server_and_predictors_run(helm):
    docs = render(helm, *FEAST)
    maps = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "medops-feast"]
    assert sorted(m["metadata"]["namespace"] for m in maps) == [
        "medops-runs",
        "medops-system",
        "oncology",
    ]
    text = maps[0]["data"]["feature_store.yaml"]
    assert all(m["data"]["feature_store.yaml"] == text for m in maps)
    config = yaml.safe_load(text)
    assert config["project"] == "extraction_demo"
    assert config["registry"] == {
        "registry_type": "sql",
        "path": "postgresql+psycopg://feast@medops-postgresql.medops-system.svc:5432/feast",
        "cache_ttl_seconds": 60,
    }
    assert config["offline_store"] == {"type": "duckdb"}
    # the password is Feast's placeholder, substituted from the Secret-fed variable
    assert config["online_store"] == {
        "type": "redis",
        "connection_string": "redis-master.medops-system.svc:6379,db=0,password=${REDIS_PASSWORD}",
    }


def test_passwords_come_from_secrets_and_the_operator_names_them(helm):
    docs = render(helm, *FEAST)
    server = find({"x": docs}, "x", "Deployment", "medops-feast")
    (container,) = server["spec"]["template"]["spec"]["containers"]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "valueFrom" in e}
    assert refs == {
        "REDIS_PASSWORD": {"name": "medops-redis", "key": "password"},
        "PGPASSWORD": {"name": "medops-feast-registry", "key": "password"},
    }
    env = _operator_env(docs)
    assert env["MEDOPS_FEAST_CONFIGMAP"] == "medops-feast"
    assert env["MEDOPS_FEAST_REDIS_CREDENTIAL_REF"] == "medops-redis"
    assert env["MEDOPS_FEAST_REGISTRY_CREDENTIAL_REF"] == "medops-feast-registry"
    # without Feast the operator wires nothing of it into predictors
    assert not any(
        name.startswith("MEDOPS_FEAST") for name in _operator_env(render(helm, *API_SERVER))
    )


def test_a_registry_url_with_a_password_or_not_on_postgresql_is_refused(helm):
    for registry in (
        "postgresql+psycopg://feast:hunter2@db:5432/feast",
        "s3://medops-feast/registry.db",
    ):
        done = run_helm(
            helm, "template", "medops", str(CHART), *FEAST, "--set", f"feast.registry={registry}"
        )
        assert done.returncode != 0
        assert "feast.registry" in done.stderr, done.stderr


def test_the_feature_server_admits_medops_pods_of_the_releases_namespaces_only(helm):
    policy = find({"x": render(helm, *FEAST)}, "x", "NetworkPolicy", "medops-feast")
    (rule,) = policy["spec"]["ingress"]
    (peer,) = rule["from"]
    assert peer["namespaceSelector"] == {
        "matchExpressions": [
            {
                "key": "kubernetes.io/metadata.name",
                "operator": "In",
                "values": ["medops-system", "medops-runs", "oncology"],
            }
        ]
    }
    assert peer["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "medops"}}
    assert rule["ports"] == [{"protocol": "TCP", "port": 6566}]
    # cluster-wide, only namespaces labelled as registry clients are added
    wide = render(helm, *FEAST, "--set", "operator.clusterWide=true")
    (rule,) = find({"x": wide}, "x", "NetworkPolicy", "medops-feast")["spec"]["ingress"]
    selectors = [p["namespaceSelector"] for p in rule["from"]]
    assert {} not in selectors
    assert {"matchLabels": {"medops.dev/registry-client": "true"}} in selectors
