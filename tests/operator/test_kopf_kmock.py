"""The operator in-process (kopf) against an emulated API server (kmock) and a real MLflow.

kmock plays the API server and the test plays KubeRay and KServe (writing their status);
MLflow is a real registry on SQLite. kmock checks no schemas, so every object it receives
from the test is defaulted and validated with the CRDs first, and every child the
operator creates is validated against the upstream CRDs afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import kopf
import pytest
import yaml
from kubernetes.config import kube_config

import medops.operator.handlers  # noqa: F401  (registers the handlers with kopf)
from medops.operator import kube
from medops.operator.rayjob import build_rayjob
from medops.operator.reconcile import reconcile_deployment, reconcile_finetune
from medops.operator.schema import validate_resource
from medops.operator.status import read_results
from tests.operator.conftest import example, write_run_results

NS = "medops-runs"
FINETUNES, RAYJOBS = "medops.dev/v1alpha1/finetunes", "ray.io/v1/rayjobs"
DEPLOYMENTS = "medops.dev/v1alpha1/modeldeployments"
ISVCS = "serving.kserve.io/v1beta1/inferenceservices"
READY = {"type": "Ready", "status": "True", "lastTransitionTime": "2026-11-25T10:00:00Z"}
T0, T1 = "2026-11-25T10:00:00Z", "2026-11-25T10:30:00Z"
CUSTOM = {FINETUNES: "FineTune", DEPLOYMENTS: "ModelDeployment"}
CHILDREN = {RAYJOBS: "RayJob", ISVCS: "InferenceService"}
VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]
pytestmark = pytest.mark.asyncio


@pytest.fixture
def cluster(kmock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """kmock with the built-in kinds, the medops CRDs and (by default) KubeRay and KServe."""
    kmock.resources.load_bundled()
    for resource, kind in {**CUSTOM, **CHILDREN}.items():
        kmock.resources[resource] = {"kind": kind, "namespaced": True, "verbs": VERBS}
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kmock", "cluster": {"server": str(kmock.url).rstrip("/")}}],
        "users": [{"name": "medops-operator", "user": {"token": "test"}}],
        "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "medops-operator"}}],
        "current-context": "kmock",
    }
    (tmp_path / "kubeconfig").write_text(yaml.safe_dump(config))
    # the client reads $KUBECONFIG once, at import: point its default location at ours
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(tmp_path / "kubeconfig"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    kube.api.cache_clear()
    yield kmock
    kube.api.cache_clear()


@contextlib.asynccontextmanager
async def running_operator() -> AsyncIterator[None]:
    """kopf in a thread with its own event loop, as in production: on stop it waits for
    every task of its loop, which must not include kmock's request handlers."""
    stop = threading.Event()
    thread = threading.Thread(
        target=asyncio.run,
        args=(kopf.operator(clusterwide=True, standalone=True, stop_flag=stop),),
        daemon=True,
    )
    thread.start()
    try:
        yield
    finally:
        stop.set()
        await asyncio.to_thread(thread.join, 20)
        assert not thread.is_alive(), "the operator did not stop"


async def until(check: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(KeyError, IndexError, TypeError):
            found = check()
            if found:
                return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def call(kmock, method: str, path: str, body: Any = None) -> Any:
    headers = {"Content-Type": "application/merge-patch+json"} if method == "PATCH" else {}
    async with (
        aiohttp.ClientSession(base_url=str(kmock.url)) as session,
        session.request(method, path, json=body, headers=headers) as response,
    ):
        assert response.status < 300, await response.text()
        return await response.json()


async def create(kmock, resource: str, obj: dict[str, Any]) -> None:
    """POST as a client would; the resourceVersion is what the API server would add (kmock
    does not, and kopf's finalizer patch tests it)."""
    obj = {**obj, "metadata": {**obj["metadata"], "resourceVersion": "1"}}
    await call(kmock, "POST", url(resource), obj)


def url(resource: str, name: str = "") -> str:
    """REST path of ``group/version/plural`` (optionally one object) in the test namespace."""
    api, plural = resource.rsplit("/", 1)
    prefix = "/api/v1" if api == "v1" else f"/apis/{api}"
    return f"{prefix}/namespaces/{NS}/{plural}" + (f"/{name}" if name else "")


def stored(kmock, resource: str, name: str) -> dict[str, Any]:
    obj = kmock.objects[resource, NS, name]
    assert not obj.deleted
    return json.loads(json.dumps(obj.raw))


def gone(kmock, resource: str, name: str) -> bool:
    key = (resource, NS, name)
    return key not in kmock.objects or kmock.objects[key].deleted


def status(kmock, resource: str, name: str) -> dict[str, Any]:
    return stored(kmock, resource, name).get("status") or {}


def finalizers(kmock, resource: str, name: str) -> list[str]:
    return stored(kmock, resource, name)["metadata"].get("finalizers", [])


def served_version(kmock) -> str:
    return stored(kmock, ISVCS, "condition")["metadata"]["annotations"]["medops.dev/model-version"]


def phase(kmock, resource: str, name: str) -> str | None:
    return status(kmock, resource, name).get("phase")


def condition(kmock, resource: str, name: str, kind: str) -> dict[str, Any] | None:
    conditions = status(kmock, resource, name).get("conditions", [])
    return next((c for c in conditions if c["type"] == kind), None)


async def test_finetune_create_children_status_results_delete(
    cluster, finetune, medops_crds, upstream_crds, tmp_path, monkeypatch
):
    monkeypatch.setenv("MEDOPS_RESULTS_ROOT", str(tmp_path / "results"))
    rayjobs, finetunes = RAYJOBS, FINETUNES
    await create(cluster, finetunes, finetune)
    async with running_operator():
        rayjob = await until(lambda: stored(cluster, rayjobs, "condition-demo"), "the RayJob")
        validate_resource(rayjob, upstream_crds)
        assert rayjob["metadata"]["ownerReferences"][0]["uid"] == finetune["metadata"]["uid"]
        recipe = stored(cluster, "v1/configmaps", "condition-demo-recipe")
        assert yaml.safe_load(recipe["data"]["recipe.yaml"]) == finetune["spec"]["recipe"]
        await until(
            lambda: status(cluster, finetunes, "condition-demo")["rayJobName"], "rayJobName"
        )
        assert status(cluster, finetunes, "condition-demo")["phase"] == "Pending"

        # KubeRay starts the job, then it succeeds and the stages have written their results
        path = url(rayjobs, "condition-demo")
        running = {"jobDeploymentStatus": "Running", "jobStatus": "RUNNING"}
        await call(cluster, "PATCH", path, {"status": {**running, "startTime": T0}})
        await until(lambda: phase(cluster, finetunes, "condition-demo") == "Running", "Running")
        assert finalizers(cluster, finetunes, "condition-demo") == ["medops.dev/operator"]
        run_dir = tmp_path / "results" / NS / "medops-runs" / "condition-demo"
        write_run_results(run_dir)
        done = {"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED", "endTime": T1}
        await call(cluster, "PATCH", path, {"status": done})
        final = await until(
            lambda: (
                (s := status(cluster, finetunes, "condition-demo"))["phase"] == "Succeeded" and s
            ),
            "Succeeded",
        )
        assert final["metrics"] == read_results(run_dir)["metrics"]
        assert final["gate"] == {
            "passed": True,
            "reason": "macro_f1 0.7600 >= threshold 0.7500 and >= baseline 0.7400",
        }
        assert final["mlflowRunId"] == "abc123" and final["endTime"] == done["endTime"]
        validate_resource(stored(cluster, finetunes, "condition-demo"), medops_crds)

        # a duplicated create (stale body, no status yet) reuses the children
        versions = len(cluster.objects[rayjobs, NS, "condition-demo"].history)
        again = await asyncio.to_thread(reconcile_finetune, finetune)
        assert again["rayJobName"] == "condition-demo" and again["phase"] == "Succeeded"
        assert len(cluster.objects[rayjobs, NS, "condition-demo"].history) == versions
        reused, created = await asyncio.to_thread(kube.ensure, build_rayjob(finetune))
        assert created is False and reused["spec"] == rayjob["spec"]  # 409 -> reuse

        # the timer's finalizer goes once the run is over: nothing left to watch
        await until(lambda: not finalizers(cluster, finetunes, "condition-demo"), "no finalizer")
        await call(cluster, "DELETE", url(finetunes, "condition-demo"))
        await until(lambda: gone(cluster, finetunes, "condition-demo"), "the finalizer released")


async def test_deployment_follows_the_alias_with_a_canary(
    cluster, deployment, mlflow_registry, medops_crds, upstream_crds
):
    uri, client = mlflow_registry
    client.set_registered_model_alias("condition-classifier", "champion", "1")
    deployment["spec"]["mlflow"]["trackingUri"] = uri
    isvcs, deployments = ISVCS, DEPLOYMENTS
    await create(cluster, deployments, deployment)
    async with running_operator():
        isvc = await until(lambda: stored(cluster, isvcs, "condition"), "the InferenceService")
        validate_resource(isvc, upstream_crds)
        assert isvc["metadata"]["annotations"]["medops.dev/model-version"] == "1"
        assert isvc["metadata"]["ownerReferences"][0]["kind"] == "ModelDeployment"
        await until(lambda: status(cluster, deployments, "condition")["servedVersion"] == "1", "v1")
        assert phase(cluster, deployments, "condition") == "Deploying"

        # KServe reports the revision ready
        ready = {"url": "http://condition.medops-runs.example.org", "conditions": [READY]}
        await call(cluster, "PATCH", url(isvcs, "condition"), {"status": ready})
        await until(lambda: phase(cluster, deployments, "condition") == "Ready", "Ready")
        assert status(cluster, deployments, "condition")["url"] == ready["url"]

        # promotion in MLflow: the timer rolls version 2 out as a 10% canary
        client.set_registered_model_alias("condition-classifier", "champion", "2")
        await until(lambda: served_version(cluster) == "2", "the rollout of version 2")
        predictor = stored(cluster, isvcs, "condition")["spec"]["predictor"]
        assert predictor["containers"][0]["args"][-1] == "models:/condition-classifier/2"
        assert predictor["canaryTrafficPercent"] == 10
        await until(
            lambda: status(cluster, deployments, "condition").get("previousVersion") == "1",
            "previousVersion",
        )
        final = status(cluster, deployments, "condition")
        assert final["servedVersion"] == "2" and "canary: version 2 gets 10%" in final["message"]
        validate_resource(stored(cluster, deployments, "condition"), medops_crds)
        assert finalizers(cluster, deployments, "condition") == ["medops.dev/operator"]
        await call(cluster, "DELETE", url(deployments, "condition"))
        await until(lambda: gone(cluster, deployments, "condition"), "the finalizer released")


async def test_missing_kuberay_and_kserve_are_named_in_conditions(cluster, finetune, deployment):
    del cluster.resources[RAYJOBS]
    del cluster.resources[ISVCS]
    await create(cluster, FINETUNES, finetune)
    await create(cluster, DEPLOYMENTS, deployment)
    async with running_operator():
        for resource, name, crd in (
            (FINETUNES, "condition-demo", "rayjobs.ray.io/v1"),
            (DEPLOYMENTS, "condition", "inferenceservices.serving.kserve.io/v1beta1"),
        ):
            found = await until(
                lambda r=resource, n=name: condition(cluster, r, n, "PrerequisitesReady"),
                f"the prerequisite condition of {name}",
            )
            assert (found["status"], found["reason"]) == ("False", "MissingCRD")
            assert crd in found["message"] and crd in status(cluster, resource, name)["message"]
        assert phase(cluster, FINETUNES, "condition-demo") == "Pending"
        assert ("v1/configmaps", NS, "condition-demo-recipe") not in cluster.objects

        # KubeRay gets installed: the next sync starts the run
        cluster.resources[RAYJOBS] = {"kind": "RayJob", "namespaced": True, "verbs": VERBS}
        await until(lambda: stored(cluster, RAYJOBS, "condition-demo"), "the RayJob")
        await until(
            lambda: (
                condition(cluster, FINETUNES, "condition-demo", "PrerequisitesReady")["status"]
                == "True"
            ),
            "PrerequisitesReady",
        )


async def test_bad_and_missing_recipes_stop_before_any_rayjob(cluster, finetune):
    finetune["spec"]["recipe"]["train"]["epochz"] = 3
    await create(cluster, FINETUNES, finetune)
    by_ref = json.loads(json.dumps(finetune))
    by_ref["metadata"].update(name="by-ref", uid="by-ref-uid")
    recipe = by_ref["spec"].pop("recipe")
    del recipe["train"]["epochz"]
    by_ref["spec"]["recipeRef"] = {"name": "condition-recipe", "key": "recipe.yaml"}
    await create(cluster, FINETUNES, by_ref)
    async with running_operator():
        await until(lambda: phase(cluster, FINETUNES, "condition-demo") == "Failed", "Failed")
        invalid = condition(cluster, FINETUNES, "condition-demo", "RecipeValid")
        assert (
            invalid["reason"] == "InvalidRecipe"
            and "train.epochz: unknown key" in invalid["message"]
        )
        missing = await until(
            lambda: condition(cluster, FINETUNES, "by-ref", "RecipeValid"), "RecipeNotFound"
        )
        assert missing["reason"] == "RecipeNotFound" and "condition-recipe" in missing["message"]
        assert phase(cluster, FINETUNES, "by-ref") == "Pending"

        # the ConfigMap appears: the run starts from a snapshot of it
        configmap = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "condition-recipe", "namespace": NS},
            "data": {"recipe.yaml": yaml.safe_dump(recipe)},
        }
        await create(cluster, "v1/configmaps", configmap)
        await until(lambda: stored(cluster, RAYJOBS, "by-ref"), "the RayJob of by-ref")
        snapshot = stored(cluster, "v1/configmaps", "by-ref-recipe")["data"]["recipe.yaml"]
        assert yaml.safe_load(snapshot) == recipe
        assert (RAYJOBS, NS, "condition-demo") not in cluster.objects


async def test_api_refusals_become_a_condition(cluster, finetune):
    cluster[f"post {url(RAYJOBS)}"] << 403  # e.g. an admission webhook or RBAC says no
    result = await asyncio.to_thread(reconcile_finetune, finetune)
    refused = next(c for c in result["conditions"] if c["type"] == "Reconciled")
    assert (refused["status"], refused["reason"]) == ("False", "KubernetesApiError")
    assert "403" in refused["message"] and result["phase"] == "Pending"


async def test_generative_deployment_names_the_keys_secret_it_waits_for(
    cluster, mlflow_registry, medops_crds, upstream_crds
):
    """A version tagged ``task: causal-lm`` (as register tags it) gets the keys Secret
    mounted; the operator cannot read Secrets, so status names the one to create."""
    uri, client = mlflow_registry
    client.create_registered_model("condition-extractor")
    client.create_model_version("condition-extractor", "s3://models/extractor/1")
    client.set_model_version_tag("condition-extractor", "1", "task", "causal-lm")
    client.set_model_version_tag("condition-extractor", "1", "approval", "approved")
    client.set_registered_model_alias("condition-extractor", "champion", "1")
    deployment = validate_resource(example("modeldeployment-generative.yaml"), medops_crds)
    deployment["metadata"]["uid"] = "gen-uid"
    deployment["spec"]["mlflow"]["trackingUri"] = uri

    result = await asyncio.to_thread(reconcile_deployment, deployment)
    isvc = validate_resource(stored(cluster, ISVCS, "extraction"), upstream_crds)
    volumes = {v["name"]: v for v in isvc["spec"]["predictor"]["volumes"]}
    assert volumes["api-keys"]["secret"]["secretName"] == "extraction-api-keys"
    assert result["apiKeysSecret"] == "extraction-api-keys"
    ready = next(c for c in result["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and "Secret extraction-api-keys" in ready["message"]
    validate_resource({**deployment, "status": result}, medops_crds)

    # KServe reports it ready: no hint any more; keys turned off: the mount and field go
    await call(cluster, "PATCH", url(ISVCS, "extraction"), {"status": {"conditions": [READY]}})
    result = await asyncio.to_thread(reconcile_deployment, {**deployment, "status": result})
    assert (result["phase"], result["message"]) == ("Ready", "serving")
    deployment["spec"]["auth"]["apiKeys"] = False
    result = await asyncio.to_thread(reconcile_deployment, {**deployment, "status": result})
    assert "apiKeysSecret" not in result
    predictor = stored(cluster, ISVCS, "extraction")["spec"]["predictor"]
    assert "api-keys" not in {v["name"] for v in predictor["volumes"]}
