"""The medops operator end to end against a real kube-apiserver 1.20 + etcd (see conftest).

Installed as a platform team would: the medops CRDs, the upstream KubeRay RayJob and
KServe InferenceService CRDs (CEL rules stripped: 1.20 has no CEL), and the ServiceAccount
and RBAC rendered from the Helm chart with the real Helm. The operator runs as a
subprocess (``python -m medops.operator``, as in the chart's Deployment) with the bearer
token of the chart's ServiceAccount identity, so every call it makes is authorized by the
chart's RBAC. The test plays the data scientist (admin) creating a FineTune and a
ModelDeployment, KubeRay and KServe (writing their children's status), and MLflow (a real
registry on SQLite whose alias it moves).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.operator.e2e.conftest import (
    OPERATOR_SA,
    OPERATOR_USER,
    RELEASE_NS,
    ROOT,
    ControlPlane,
    path_of,
    process,
    tail,
    wait_for,
)
from tests.paths import UPSTREAM_CRDS
from tests.support.network import free_port

pytestmark = pytest.mark.e2e

NS = "medops-runs"  # where users create FineTunes and ModelDeployments
MEDOPS_API = "medops.dev/v1alpha1"
CRD_API = "apiextensions.k8s.io/v1"
UPSTREAM = ("ray.io_rayjobs.yaml", "serving.kserve.io_inferenceservices.yaml")
WAIT = 30.0  # s, for anything the operator does (it syncs every second here)


def _dropped(key: str, value: Any) -> bool:
    if key == "x-kubernetes-validations":
        return True
    if not isinstance(value, str):  # e.g. a field named "description": its schema, a dict
        return False
    return key == "description" or (key == "default" and value == "")


def strip_for_1_20(node: Any) -> Any:
    """What an API server without CEL accepts (see tests/crds/SOURCE.md).

    - no ``x-kubernetes-validations`` (CEL);
    - no ``default: ""`` on strings: 1.20 validates an empty-string default as null and
      refuses the CRD. Where such a property is a key of an ``x-kubernetes-list-type: map``
      list, 1.20 wants a default or ``required``: it becomes required instead;
    - no descriptions: documentation only, and less for the 2-core API server to index.
    """
    if isinstance(node, list):
        return [strip_for_1_20(item) for item in node]
    if not isinstance(node, dict):
        return node
    stripped = {k: strip_for_1_20(v) for k, v in node.items() if not _dropped(k, v)}
    items = node.get("items")
    if node.get("x-kubernetes-list-type") == "map" and isinstance(items, dict):
        properties = items.get("properties", {})
        keys = [
            key
            for key in node.get("x-kubernetes-list-map-keys", [])
            if properties.get(key, {}).get("default") == ""
        ]
        required = stripped["items"].get("required", [])
        stripped["items"]["required"] = required + [k for k in keys if k not in required]
    return stripped


def crds() -> list[dict[str, Any]]:
    medops = [yaml.safe_load(p.read_text()) for p in sorted((ROOT / "manifests/crds").glob("*"))]
    missing = [name for name in UPSTREAM if not (UPSTREAM_CRDS / name).is_file()]
    if missing:
        pytest.fail(f"upstream CRDs {missing} not found in {UPSTREAM_CRDS}")
    upstream = [
        strip_for_1_20(yaml.safe_load((UPSTREAM_CRDS / name).read_text())) for name in UPSTREAM
    ]
    return medops + upstream


def chart_rbac() -> list[dict[str, Any]]:
    """The operator's ServiceAccount and RBAC exactly as ``helm template`` renders them."""
    helm = os.environ.get("MEDOPS_HELM", str(ROOT / ".venv" / "bin" / "helm"))
    if not os.access(helm, os.X_OK):
        pytest.fail(f"no helm at {helm}: `make venv` unpacks it (or set MEDOPS_HELM)")
    show = ["--show-only", "templates/operator-serviceaccount.yaml"]
    show += ["--show-only", "templates/operator-rbac.yaml"]
    chart = str(ROOT / "charts" / "medops")
    # the one value the chart requires: the API server's address (here, on loopback)
    required = ["--set", "networkPolicy.apiServerCIDRs={127.0.0.1/32}"]
    rendered = subprocess.run(
        [helm, "template", "medops", chart, "--namespace", RELEASE_NS, *required, *show],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


def example(name: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / "manifests" / "examples" / name).read_text())


@pytest.fixture(scope="module")
def installed(control_plane: ControlPlane) -> ControlPlane:
    admin = control_plane.admin
    for namespace in (RELEASE_NS, NS):
        admin.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    names = [admin.create(crd)["metadata"]["name"] for crd in crds()]

    def established() -> bool:
        for name in names:
            crd = admin.get(path_of(CRD_API, "CustomResourceDefinition", None, name))
            conditions = {c["type"]: c["status"] for c in crd["status"].get("conditions", [])}
            if conditions.get("Established") != "True":
                return False
        return True

    wait_for(established, f"CRDs {names} to be established", WAIT)
    rbac = chart_rbac()
    kinds = sorted(obj["kind"] for obj in rbac)
    # default values: a Role in the watched namespace, and the CRD list/watch ClusterRole
    expected = ["ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"]
    assert kinds == sorted(expected), f"unexpected chart RBAC objects: {kinds}"
    account = next(obj for obj in rbac if obj["kind"] == "ServiceAccount")["metadata"]
    # the operator's token authenticates as this ServiceAccount (conftest's token file)
    assert (account["namespace"], account["name"]) == (RELEASE_NS, OPERATOR_SA), account
    for obj in rbac:
        admin.create(obj)
    # users' credentials, which the operator must never be able to read
    for namespace in (NS, "kube-system"):
        admin.create(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "medops-mlflow-credentials", "namespace": namespace},
                "stringData": {"MLFLOW_TRACKING_PASSWORD": "not-for-the-operator"},
            }
        )
    return control_plane


@pytest.fixture(scope="module")
def operator(
    installed: ControlPlane,
    tmp_path_factory: pytest.TempPathFactory,
    mlflow_registry: tuple[str, Any],
) -> Iterator[Path]:
    """``python -m medops.operator`` as the chart's ServiceAccount, with the allowlists the
    chart's default values give it; yields its log file."""
    base = tmp_path_factory.mktemp("operator")
    kubeconfig = installed.kubeconfig(base / "kubeconfig", "operator")
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("KUBERNETES_", "KUBECONFIG"))
    }
    env.update(
        KUBECONFIG=str(kubeconfig),
        HOME=str(base),  # no ~/.kube/config of the developer's
        MEDOPS_SYNC_SECONDS="1",
        MEDOPS_ALLOWED_IMAGE_PREFIXES="registry.example.org/medops/",
        MEDOPS_ALLOWED_SERVICE_ACCOUNTS="",
        MEDOPS_ALLOWED_CREDENTIAL_REFS="medops-mlflow-credentials",
        MEDOPS_ALLOWED_TRACKING_URIS=mlflow_registry[0],
        MLFLOW_DISABLE_TELEMETRY="true",
        PYTHONUNBUFFERED="1",
    )
    log = base / "operator.log"
    args = [
        sys.executable,
        "-m",
        "medops.operator",
        "--liveness",
        f"http://127.0.0.1:{port}/healthz",
        f"--namespace={NS}",  # as the chart's default values run it: namespace-scoped
    ]
    with process(args, log, env=env) as proc:

        def alive() -> bool:
            if proc.poll() is not None:
                pytest.fail(f"operator exited ({proc.returncode}){tail(log)}")
            return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).ok

        wait_for(alive, "the operator's liveness endpoint", WAIT, lambda: tail(log))
        yield log


def owned_by(child: dict[str, Any], parent: dict[str, Any]) -> None:
    refs = child["metadata"].get("ownerReferences", [])
    assert len(refs) == 1, refs
    ref = refs[0]
    assert (ref["apiVersion"], ref["kind"]) == (parent["apiVersion"], parent["kind"]), ref
    assert (ref["name"], ref["uid"]) == (parent["metadata"]["name"], parent["metadata"]["uid"])
    assert ref.get("controller") is True, ref


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    conditions = (obj.get("status") or {}).get("conditions", [])
    return next((c for c in conditions if c["type"] == kind), None)


def test_operator_identity_is_refused_what_the_chart_does_not_grant(installed: ControlPlane):
    operator = installed.operator
    refused = [
        ("GET", f"/api/v1/namespaces/{NS}/secrets/medops-mlflow-credentials"),
        ("GET", "/api/v1/namespaces/kube-system/secrets/medops-mlflow-credentials"),
        ("GET", f"/api/v1/namespaces/{RELEASE_NS}/secrets"),
        ("GET", "/api/v1/secrets"),
        ("GET", f"/api/v1/namespaces/{NS}/pods"),
        ("DELETE", path_of("ray.io/v1", "RayJob", NS, "anything")),
        ("DELETE", path_of(MEDOPS_API, "FineTune", NS, "anything")),
        ("PUT", path_of("v1", "ConfigMap", NS, "anything")),
    ]
    for method, path in refused:
        response = operator.call(method, path)
        assert response.status_code == 403, (method, path, response.status_code, response.text)
        assert response.json()["reason"] == "Forbidden"
        assert OPERATOR_USER in response.json()["message"], response.json()["message"]
    # ...while what the chart grants is allowed
    for path in (path_of(MEDOPS_API, "FineTune", NS), path_of("ray.io/v1", "RayJob", NS, "x")):
        assert operator.call("GET", path).status_code in (200, 404), path


def test_finetune_gets_a_rayjob_and_status(installed: ControlPlane, operator: Path):
    admin = installed.admin
    created = admin.create(example("finetune-inline.yaml"))
    name = created["metadata"]["name"]
    ft_path = path_of(MEDOPS_API, "FineTune", NS, name)
    rayjob_path = path_of("ray.io/v1", "RayJob", NS, name)
    log = lambda: tail(operator)  # noqa: E731

    rayjob = wait_for(lambda: admin.get(rayjob_path), "the RayJob", WAIT, log)
    owned_by(rayjob, created)
    recipe = admin.get(path_of("v1", "ConfigMap", NS, f"{name}-recipe"))
    assert recipe is not None and "recipe.yaml" in recipe["data"]
    owned_by(recipe, created)
    assert rayjob["spec"]["shutdownAfterJobFinishes"] is True  # kept by the real schema

    def reconciled() -> dict[str, Any] | None:
        ft = admin.get(ft_path)
        ok = condition(ft, "Reconciled")
        return ft if ok and ok["status"] == "True" and ft["status"].get("rayJobName") else None

    ft = wait_for(reconciled, "FineTune status Reconciled=True", WAIT, log)
    assert ft["status"]["phase"] == "Pending"
    assert condition(ft, "PrerequisitesReady")["status"] == "True"
    assert condition(ft, "RecipeValid")["status"] == "True"
    assert ft["metadata"]["finalizers"] == ["medops.dev/operator"]

    # the status subresource is on: a write to the main resource cannot touch status, so
    # the status above was written through /status (the operator may patch both)
    admin.merge_patch(ft_path, {"status": {"phase": "Failed"}}).raise_for_status()
    assert admin.get(ft_path)["status"]["phase"] == "Pending"

    # KubeRay reports the job running (through the RayJob's own status subresource)
    running = {"status": {"jobDeploymentStatus": "Running", "jobStatus": "RUNNING"}}
    admin.merge_patch(f"{rayjob_path}/status", running).raise_for_status()
    wait_for(lambda: admin.get(ft_path)["status"]["phase"] == "Running", "phase Running", WAIT, log)


def test_a_foreign_image_or_service_account_gets_no_rayjob(installed: ControlPlane, operator: Path):
    """Issue 22: creating a FineTune is not creating a pod with any image or identity."""
    admin = installed.admin
    log = lambda: tail(operator)  # noqa: E731
    for name, change in (
        ("foreign-image", {"image": "docker.io/attacker/miner:1"}),
        ("foreign-account", {"serviceAccountName": "cluster-admin-sa"}),
    ):
        finetune = example("finetune-inline.yaml")
        finetune["metadata"]["name"] = name
        finetune["spec"].update(change)
        admin.create(finetune)
        path = path_of(MEDOPS_API, "FineTune", NS, name)

        def refused(path: str = path) -> dict[str, Any] | None:
            found = condition(admin.get(path), "SpecAllowed")
            return found if found and found["status"] == "False" else None

        found = wait_for(refused, f"{name}: SpecAllowed=False", WAIT, log)
        assert found["reason"] == "NotAllowed", found
        assert admin.get(path_of("ray.io/v1", "RayJob", NS, name)) is None
        assert admin.get(path)["status"]["phase"] == "Failed"


def test_modeldeployment_serves_the_alias_and_follows_it(
    installed: ControlPlane, operator: Path, mlflow_registry: tuple[str, Any]
):
    admin = installed.admin
    uri, client = mlflow_registry
    deployment = example("modeldeployment-medops.yaml")
    deployment["spec"]["mlflow"]["trackingUri"] = uri
    created = admin.create(deployment)
    name = created["metadata"]["name"]
    md_path = path_of(MEDOPS_API, "ModelDeployment", NS, name)
    isvc_path = path_of("serving.kserve.io/v1beta1", "InferenceService", NS, name)
    log = lambda: tail(operator)  # noqa: E731

    isvc = wait_for(lambda: admin.get(isvc_path), "the InferenceService", WAIT, log)
    owned_by(isvc, created)
    assert isvc["metadata"]["annotations"]["medops.dev/model-version"] == "1"

    def status_of() -> dict[str, Any]:
        return admin.get(md_path).get("status") or {}

    wait_for(lambda: status_of().get("servedVersion") == "1", "servedVersion 1", WAIT, log)
    md = admin.get(md_path)
    assert md["status"]["phase"] == "Deploying"
    for kind in ("PrerequisitesReady", "VersionResolved", "SpecValid"):
        assert condition(md, kind)["status"] == "True", condition(md, kind)
    assert condition(md, "Ready")["status"] == "False"

    # KServe reports the revision ready
    ready = {
        "url": f"http://{name}.{NS}.example.org",
        "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": "2026-11-25T10:00:00Z"}
        ],
    }
    admin.merge_patch(f"{isvc_path}/status", {"status": ready}).raise_for_status()
    wait_for(lambda: status_of().get("phase") == "Ready", "phase Ready", WAIT, log)
    assert status_of()["url"] == ready["url"]

    # promotion: the alias moves to version 2 -> the operator rolls it out (JSON patch)
    client.set_registered_model_alias("condition-classifier", "champion", "2")
    wait_for(
        lambda: admin.get(isvc_path)["metadata"]["annotations"]["medops.dev/model-version"] == "2",
        "the InferenceService to move to version 2",
        WAIT,
        log,
    )
    isvc = admin.get(isvc_path)
    assert isvc["spec"]["predictor"]["canaryTrafficPercent"] == 10
    owned_by(isvc, created)
    wait_for(lambda: status_of().get("servedVersion") == "2", "servedVersion 2", WAIT, log)
    assert status_of()["previousVersion"] == "1"
