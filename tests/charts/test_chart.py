"""The Helm chart, rendered by the real Helm binary the Makefile fetches into the venv.

Every rendered object must be something a platform team accepts: built-in kinds valid
for Kubernetes 1.29 (kubernetes-validate, strict), Pod Security "restricted" on every
workload, limits everywhere, RBAC without wildcards and no broader than the operator's
calls, no Secret values in the chart.
"""

from __future__ import annotations

import json
from typing import Any

import kubernetes_validate
import pytest
import yaml

from medops.operator import kube
from tests.paths import ROOT
from tests.support.helm import API_SERVER, CHART, run_helm

KUBE_VERSION = "1.29.0"
VALUES = {
    "default": API_SERVER,
    "clusterwide": [*API_SERVER, "--set", "operator.clusterWide=true"],
    "cpu": ["-f", str(CHART / "examples" / "values-cpu.yaml")],
    "gpu": ["-f", str(CHART / "examples" / "values-gpu.yaml")],
}
DANGEROUS = {"delete", "deletecollection", "escalate", "bind", "impersonate", "update"}
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}


@pytest.fixture(scope="session")
def rendered(helm: str) -> dict[str, list[dict[str, Any]]]:
    out = {}
    for name, extra in VALUES.items():
        args = ["--namespace", "medops-system", "--include-crds", "--kube-version", KUBE_VERSION]
        done = run_helm(helm, "template", "medops", str(CHART), *args, *extra)
        assert done.returncode == 0, done.stderr
        out[name] = [doc for doc in yaml.safe_load_all(done.stdout) if doc]
    return out


def find(rendered, values: str, kind: str, name: str) -> dict[str, Any]:
    return next(d for d in rendered[values] if d["kind"] == kind and d["metadata"]["name"] == name)


def objects(rendered, kinds: set[str] | None = None):
    for name, docs in rendered.items():
        for doc in docs:
            if kinds is None or doc["kind"] in kinds:
                yield name, doc


@pytest.mark.parametrize("values", sorted(VALUES))
def test_helm_lint_strict(helm, values):
    done = run_helm(helm, "lint", "--strict", str(CHART), *VALUES[values])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 chart(s) failed" in done.stdout


def test_renders_the_control_plane(rendered):
    kinds = {doc["kind"] for doc in rendered["default"]}
    assert {
        "CustomResourceDefinition",
        "Deployment",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Service",
        "NetworkPolicy",
    } <= kinds
    crds = {
        d["metadata"]["name"]
        for d in rendered["default"]
        if d["kind"] == "CustomResourceDefinition"
    }
    assert crds == {"finetunes.medops.dev", "modeldeployments.medops.dev"}
    cpu = {(d["kind"], d["metadata"]["name"]) for d in rendered["cpu"]}
    assert ("StatefulSet", "medops-postgresql") in cpu and ("Deployment", "medops-feast") in cpu
    assert not any(d["kind"] == "StatefulSet" for d in rendered["gpu"])


@pytest.mark.parametrize("values", sorted(VALUES))
def test_builtin_kinds_validate_strictly(rendered, values):
    assert rendered[values], f"{values}: helm rendered nothing"
    for doc in rendered[values]:
        try:
            kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            what = f"{doc['kind']}/{doc['metadata']['name']}"
            pytest.fail(f"{values}: {what}: {error.message} at {list(error.path)}")


def _pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec = workload["spec"]
    if workload["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]["spec"]


def test_every_workload_is_pod_security_restricted_with_limits(rendered):
    seen = 0
    for values, workload in objects(rendered, WORKLOADS):
        where = f"{values}: {workload['kind']}/{workload['metadata']['name']}"
        pod = _pod_spec(workload)
        assert pod["securityContext"]["runAsNonRoot"] is True, where
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert not pod.get("hostNetwork") and not pod.get("hostPID"), where
        for container in pod["containers"] + pod.get("initContainers", []):
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, where
            assert context["readOnlyRootFilesystem"] is True, where
            assert context["capabilities"] == {"drop": ["ALL"]}, where
            assert context["runAsNonRoot"] is True, where
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}, where
            assert set(container["resources"]) == {"requests", "limits"}, where
            assert {"cpu", "memory"} <= set(container["resources"]["limits"]), where
            mounts = {m["mountPath"] for m in container.get("volumeMounts", [])}
            assert "/tmp" in mounts, f"{where}: read-only root needs a writable /tmp"
            seen += 1
    assert seen >= 7


def test_no_secret_values_in_the_chart(rendered):
    for values, doc in objects(rendered):
        assert doc["kind"] != "Secret", values
        if doc["kind"] not in WORKLOADS:
            continue
        for container in _pod_spec(doc)["containers"]:
            for env in container.get("env", []):
                sensitive = any(w in env["name"] for w in ("PASSWORD", "TOKEN", "SECRET", "KEY"))
                sensitive = sensitive or (env["name"].endswith("_URI") and "BACKEND" in env["name"])
                if sensitive:
                    assert "valueFrom" in env and "value" not in env, f"{values}: {env['name']}"


def _rules(rendered, values: str) -> dict[str, list[dict[str, Any]]]:
    return {
        f"{doc['kind']}/{doc['metadata'].get('namespace', '')}/{doc['metadata']['name']}": doc[
            "rules"
        ]
        for _, doc in objects({values: rendered[values]}, {"ClusterRole", "Role"})
    }


def test_rbac_is_least_privilege(rendered):
    for values in VALUES:
        for role, rules in _rules(rendered, values).items():
            for rule in rules:
                for field in ("apiGroups", "resources", "verbs"):
                    assert "*" not in rule[field], f"{values} {role}: wildcard in {field}"
                assert "secrets" not in rule["resources"], f"{values} {role}"
                assert not DANGEROUS & set(rule["verbs"]), f"{values} {role}"
    granted = {
        (group, resource): set(rule["verbs"])
        for rule in _rules(rendered, "clusterwide")["ClusterRole//medops-operator"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    # what medops.operator.kube calls, and nothing more
    for kind, plural in kube.PLURALS.items():
        group = {"ConfigMap": "", "RayJob": "ray.io", "InferenceService": "serving.kserve.io"}[kind]
        assert {"get", "create"} <= granted[(group, plural)], kind
    assert granted[("serving.kserve.io", "inferenceservices")] == {"get", "create", "patch"}
    assert granted[("ray.io", "rayjobs")] == {"get", "create"}
    assert granted[("medops.dev", "finetunes/status")] == {"get", "patch"}
    assert granted[("", "events")] == {"create"}


@pytest.mark.parametrize("values", ["default", "cpu"])
def test_watching_namespaces_uses_roles_not_a_cluster_role(rendered, values):
    """Issue 22, finding 3: namespace-scoped unless a platform team says clusterWide."""
    roles = _rules(rendered, values)
    assert "Role/medops-runs/medops-operator" in roles
    assert set(roles) == {
        "Role/medops-runs/medops-operator",
        "Role/medops-runs/medops-pipeline-runner",
        "ClusterRole//medops-operator-crds",
    }
    crd_rule, namespace_rule = roles["ClusterRole//medops-operator-crds"]
    assert crd_rule["verbs"] == namespace_rule["verbs"] == ["list", "watch"]
    assert namespace_rule["resources"] == ["namespaces"]
    operator = find(rendered, values, "Deployment", "medops-operator")
    assert (
        "--namespace=medops-runs" in operator["spec"]["template"]["spec"]["containers"][0]["args"]
    )
    clusterwide = _rules(rendered, "clusterwide")
    assert "ClusterRole//medops-operator" in clusterwide
    assert not any(role.startswith("Role/") for role in clusterwide)


def test_pipeline_steps_may_create_and_read_finetunes_and_nothing_else(rendered):
    """The `finetune` step's identity: what medops.launch.finetune calls, in each namespace."""
    role = find(rendered, "default", "Role", "medops-pipeline-runner")
    assert role["metadata"]["namespace"] == "medops-runs"
    assert role["rules"] == [
        {"apiGroups": ["medops.dev"], "resources": ["finetunes"], "verbs": ["create", "get"]}
    ]
    binding = find(rendered, "default", "RoleBinding", "medops-pipeline-runner")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "pipeline-runner", "namespace": "medops-runs"}
    ]
    assert binding["roleRef"]["name"] == "medops-pipeline-runner"


def test_no_default_opens_egress_to_every_address(helm, rendered):
    """Issue 22, finding 1: without the API server's CIDR the chart refuses to render,
    and no rendering (defaults, examples) allows 0.0.0.0/0 anywhere."""
    done = run_helm(helm, "template", "medops", str(CHART))
    assert done.returncode != 0
    assert "networkPolicy.apiServerCIDRs is empty" in done.stderr
    for values, docs in rendered.items():
        assert "0.0.0.0/0" not in json.dumps(docs), values
        for doc in docs:
            if doc["kind"] == "NetworkPolicy":
                for rule in doc["spec"].get("egress") or []:
                    assert rule.get("to"), f"{values} {doc['metadata']['name']}: egress to all"


def test_no_namespaces_and_no_cluster_wide_is_a_clear_error(helm):
    done = run_helm(
        helm,
        "template",
        "medops",
        str(CHART),
        *API_SERVER,
        "--set-json",
        "operator.watchNamespaces=[]",
    )
    assert done.returncode != 0
    assert "list the namespaces medops runs in, or set operator.clusterWide: true" in done.stderr


def test_every_pod_is_covered_by_a_network_policy(rendered):
    for values, docs in rendered.items():
        policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
        for _, workload in objects({values: docs}, WORKLOADS):
            labels = workload["spec"]["template"]["metadata"]["labels"]
            selecting = [
                p["metadata"]["name"]
                for p in policies
                if p["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
            ]
            assert len(selecting) >= 2, f"{values}: {workload['metadata']['name']}"


def test_operator_mounts_the_results_volume_where_it_looks(rendered):
    operator = find(rendered, "gpu", "Deployment", "medops-operator")
    container = operator["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    # reconcile reads <MEDOPS_RESULTS_ROOT>/<namespace>/<pvc>/<finetune>
    assert (
        mounts["results"]["mountPath"] == f"{env['MEDOPS_RESULTS_ROOT']}/medops-system/medops-runs"
    )
    assert mounts["results"]["readOnly"] is True
    assert container["command"] == ["python", "-m", "medops.operator"]


@pytest.mark.parametrize(
    ("setting", "complaint"),
    [
        ("operator.syncSeconds=0", "syncSeconds"),
        ("operator.frequency=3", "frequency"),
        ("mlflow.backendStore.existingSecret=", "existingSecret"),
        ("mlflow.artifacts.destination=/data", "destination"),
        ("image.pullPolicy=Sometimes", "pullPolicy"),
    ],
)
def test_values_schema_rejects_bad_values(helm, setting, complaint):
    done = run_helm(helm, "template", "medops", str(CHART), "--set", setting)
    assert done.returncode != 0
    assert "values don't meet the specifications of the schema" in done.stderr
    assert complaint in done.stderr


def test_chart_ships_the_manifests_crds_with_a_closed_auth_section(rendered):
    """The chart's crds/ are manifests/crds (one source), and a ModelDeployment may turn
    API keys on or off but never name the Secret: auth has no other field."""
    for path in sorted((ROOT / "manifests" / "crds").glob("*.yaml")):
        assert (CHART / "crds" / path.name).read_bytes() == path.read_bytes(), path.name
    crd = find(rendered, "default", "CustomResourceDefinition", "modeldeployments.medops.dev")
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
    auth = schema["spec"]["properties"]["auth"]
    assert set(auth["properties"]) == {"apiKeys"}
    assert auth["properties"]["apiKeys"]["type"] == "boolean"
    assert not auth.get("x-kubernetes-preserve-unknown-fields")
    assert schema["status"]["properties"]["apiKeysSecret"]["type"] == "string"


def test_label_studio_is_reachable_only_from_medops_and_the_ingress(rendered):
    deployment = find(rendered, "cpu", "Deployment", "medops-label-studio")
    pod = _pod_spec(deployment)
    assert pod["automountServiceAccountToken"] is False
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    for name in ("LABEL_STUDIO_PASSWORD", "LABEL_STUDIO_USER_TOKEN", "POSTGRE_PASSWORD"):
        assert "secretKeyRef" in env[name]["valueFrom"], name
    assert env["LATEST_VERSION_CHECK"]["value"] == "false" and env["SENTRY_DSN"]["value"] == ""
    policy = find(rendered, "cpu", "NetworkPolicy", "medops-label-studio")
    (rule,) = policy["spec"]["ingress"]
    sources = [peer.get("podSelector", {}).get("matchLabels") for peer in rule["from"]]
    assert {"app.kubernetes.io/name": "medops"} in sources
    ingress = [
        p["namespaceSelector"]["matchLabels"] for p in rule["from"] if "podSelector" not in p
    ]
    assert ingress == [{"kubernetes.io/metadata.name": "ingress-nginx"}]
    assert [p["port"] for p in policy["spec"]["egress"][0]["ports"]] == [5432]
    assert not any(d["metadata"]["name"] == "medops-label-studio" for d in rendered["default"])


def test_the_operator_may_name_only_the_charts_registry_by_default(rendered):
    operator = find(rendered, "default", "Deployment", "medops-operator")
    env = {e["name"]: e.get("value") for e in _pod_spec(operator)["containers"][0]["env"]}
    allowed = env["MEDOPS_ALLOWED_TRACKING_URIS"]
    assert allowed == "http://medops-mlflow.medops-system.svc:5000"


def test_every_scratch_volume_in_the_chart_is_bounded(rendered):
    for values, workload in objects(rendered, WORKLOADS):
        for volume in _pod_spec(workload).get("volumes", []):
            if "emptyDir" in volume:
                assert volume["emptyDir"].get("sizeLimit"), (values, workload["metadata"]["name"])


def test_no_secret_reaches_a_command_line(rendered):
    """Low findings 12-13: `$(VAR)` in args, or `$VAR` in a shell script, puts a Secret's
    value on some process's argv (`ps`, /proc)."""
    for values, workload in objects(rendered, WORKLOADS):
        for container in _pod_spec(workload)["containers"]:
            secret_vars = {
                env["name"]
                for env in container.get("env", [])
                if "secretKeyRef" in env.get("valueFrom", {})
            }
            words = " ".join(container.get("command", []) + container.get("args", []))
            leaked = [
                name
                for name in secret_vars
                if any(form in words for form in (f"$({name})", f"${name}", f"${{{name}}}"))
            ]
            assert not leaked, (values, workload["metadata"]["name"], leaked)


def test_the_pods_the_operator_creates_are_fenced_in_each_watched_namespace(rendered):
    """Issue 22, finding 5: training and predictor pods (labelled by the operator's own
    ``objects.labels``) are selected by a policy in their namespace."""
    from medops.operator.objects import labels

    policies = {
        d["metadata"]["name"]: d
        for d in rendered["cpu"]
        if d["kind"] == "NetworkPolicy" and d["metadata"]["namespace"] == "medops-runs"
    }
    for kind, component, policy in (
        ("FineTune", "finetune", "medops-training"),
        ("ModelDeployment", "modeldeployment", "medops-predictors"),
    ):
        pod = labels({"kind": kind, "metadata": {"name": "any"}}, component)
        selector = policies[policy]["spec"]["podSelector"]["matchLabels"]
        assert selector.items() <= pod.items(), policy
        assert set(policies[policy]["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    sources = policies["medops-predictors"]["spec"]["ingress"][0]["from"]
    names = [s["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for s in sources]
    assert names == ["knative-serving", "istio-system"] and all(
        "podSelector" not in s for s in sources
    )
    # cluster-wide, the chart knows no namespace to put them in (docs/security.md)
    assert not [
        d for d in rendered["clusterwide"] if d["metadata"].get("namespace") == "medops-runs"
    ]


def test_the_operator_reads_the_audit_log_when_given_one(helm):
    url = "postgresql+psycopg://audit_ro@db.example:5432/audit"
    given = ["--set", f"operator.auditDatabase.url={url}"]
    secret = ["--set", "operator.auditDatabase.passwordSecret=audit-db"]
    done = run_helm(helm, "template", "medops", str(CHART), *API_SERVER, *given, *secret)
    assert done.returncode == 0, done.stderr
    docs = [d for d in yaml.safe_load_all(done.stdout) if d and d["kind"] == "Deployment"]
    operator = next(d for d in docs if d["metadata"]["name"].endswith("operator"))
    env = {e["name"]: e for e in operator["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MEDOPS_AUDIT_DB"]["value"] == url
    assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "audit-db", "key": "password"}
    no_secret = run_helm(helm, "template", "medops", str(CHART), *API_SERVER, *given)
    assert no_secret.returncode != 0 and "operator.auditDatabase.passwordSecret" in no_secret.stderr
    password = ["--set", "operator.auditDatabase.url=postgresql://audit:hunter2@db/audit"]
    refused = run_helm(helm, "template", "medops", str(CHART), *API_SERVER, *password, *secret)
    assert refused.returncode != 0 and "operator.auditDatabase.url" in refused.stderr
