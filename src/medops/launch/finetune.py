"""Hand training to the medops operator: create a ``FineTune`` and wait for its verdict.

With ``cluster.training: finetune`` the pipeline's training step does not train: it
creates a ``FineTune`` (``medops.dev/v1alpha1``) whose operator runs train -> evaluate ->
register as a KubeRay RayJob on GPU nodes, writing ``<mountPath>/<name>/<stage>``, and it
waits on ``status.phase``. The name is the pipeline run's key, so a retried KFP task finds
the FineTune it created before (HTTP 409) and waits on that one instead of training twice.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kfp import dsl
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from medops.launch.errors import ClusterError
from medops.launch.kfp_task import publish, stage_dir
from medops.launch.storage import run_key
from medops.recipe import Recipe, build_recipe
from medops.registry.tracking import TRACKING_ENV

log = logging.getLogger(__name__)

GROUP, VERSION, PLURAL, KIND = "medops.dev", "v1alpha1", "finetunes", "FineTune"
RECIPE_HASH_LABEL = "medops.dev/recipe-hash"
_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class FineTuneFailed(ClusterError):
    """The FineTune ended Failed (or never finished): names it and says why, in one line."""


def finetune_resource(recipe: Recipe, name: str, tracking_uri: str) -> dict[str, Any]:
    """The FineTune for ``recipe``: a pure builder, spec in, manifest dict out."""
    cluster, resources = recipe.cluster, recipe.resources
    mlflow = {"trackingUri": tracking_uri}
    if cluster.mlflow_secret:
        mlflow["secretRef"] = cluster.mlflow_secret
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {
            "name": name,
            "labels": {
                RECIPE_HASH_LABEL: recipe.content_hash(),
                "app.kubernetes.io/managed-by": "medops-pipeline",
            },
        },
        "spec": {
            # the tracking server travels in spec.mlflow, where the operator checks it
            "recipe": _without_tracking_uri(recipe.to_dict()),
            "image": cluster.images.gpu if resources.use_gpu else cluster.images.cpu,
            "resources": {
                "workers": resources.num_workers,
                "gpusPerWorker": resources.gpus_per_worker if resources.use_gpu else 0,
                "cpu": str(resources.cpus_per_worker),
                "memory": cluster.finetune.worker_memory,
            },
            "storage": {"pvc": cluster.storage.pvc, "mountPath": cluster.storage.mount_path},
            "mlflow": mlflow,
        },
    }


def _without_tracking_uri(raw: dict[str, Any]) -> dict[str, Any]:
    registry = {k: v for k, v in raw["registry"].items() if k != "tracking_uri"}
    return {**raw, "registry": registry}


def create_or_reuse(api: Any, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
    """Create the FineTune; on 409 adopt the existing one if it runs the same recipe."""
    name = body["metadata"]["name"]
    try:
        return api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    except ApiException as error:
        if error.status != 409:
            raise _refused(error, namespace) from None
    existing = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
    theirs = existing.get("metadata", {}).get("labels", {}).get(RECIPE_HASH_LABEL)
    ours = body["metadata"]["labels"][RECIPE_HASH_LABEL]
    if theirs != ours:
        raise ClusterError(
            f"FineTune {namespace}/{name} already exists for recipe hash {theirs}, "
            f"not this run's {ours}: delete it or rerun the pipeline"
        )
    log.info("FineTune %s/%s exists (a retried task): waiting on it", namespace, name)
    return existing


def wait_for(
    api: Any,
    namespace: str,
    name: str,
    poll_seconds: float,
    timeout_seconds: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Poll until ``status.phase`` is Succeeded (return the status) or Failed (raise)."""
    deadline = clock() + timeout_seconds
    seen = object()
    while True:
        resource = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        status = resource.get("status") or {}
        phase = status.get("phase")
        if phase != seen:
            log.info("FineTune %s/%s: %s", namespace, name, phase or "no status yet")
            seen = phase
        if phase == "Succeeded":
            return status
        if phase == "Failed":
            raise FineTuneFailed(f"FineTune {namespace}/{name} failed: {failure_reason(status)}")
        if clock() >= deadline:
            raise FineTuneFailed(
                f"FineTune {namespace}/{name} is still {phase or 'without a status'} after "
                f"{timeout_seconds:.0f} s; is the medops operator running for {namespace}?"
            )
        sleep(poll_seconds)


def failure_reason(status: dict[str, Any]) -> str:
    """``status.message`` and every condition that is not True, on one line."""
    parts = [status.get("message") or ""]
    for condition in status.get("conditions") or []:
        if condition.get("status") != "True":
            detail = " ".join(filter(None, (condition.get("reason"), condition.get("message"))))
            parts.append(f"{condition.get('type')}: {detail}".rstrip(": "))
    reason = "; ".join(part for part in parts if part)
    return re.sub(r"\s+", " ", reason).strip() or "no message in its status"


def hand_off(
    recipe_json: str,
    prepared: dsl.Artifact,
    outputs: dict[str, dsl.Artifact],
    storage_root: str,
    run_id: str,
    api: Any = None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """The finetune component's body: check the prepared data is where the operator reads
    it, create (or reuse) the FineTune, wait, then publish the stage directories it wrote."""
    recipe = build_recipe(json.loads(recipe_json))
    tracking = recipe.registry.tracking_uri or os.environ.get(TRACKING_ENV)
    if not tracking:
        raise ClusterError(
            "a FineTune needs an MLflow tracking URI: set registry.tracking_uri or "
            f"cluster.mlflow_secret (a Secret with key {TRACKING_ENV})"
        )
    name = run_key(recipe.name, run_id)
    run_dir = Path(storage_root) / name
    if stage_dir(prepared) != run_dir / "prepare":
        raise ClusterError(
            f"the FineTune reads prepared data from {run_dir / 'prepare'}, not from "
            f"{stage_dir(prepared)}: was prepare taken from the cache? submit without caching"
        )
    if api is None:
        api = _custom_objects_api()
    settings = recipe.cluster.finetune
    namespace = settings.namespace or _own_namespace()
    create_or_reuse(api, namespace, finetune_resource(recipe, name, tracking))
    timeout = int(settings.timeout[:-1]) * _SECONDS[settings.timeout[-1]]
    status = wait_for(api, namespace, name, settings.poll_seconds, timeout, sleep=sleep)
    for stage, output in outputs.items():
        publish(output, run_dir / stage)
    return status


def _refused(error: ApiException, namespace: str) -> ClusterError:
    """The API server's refusal in words a pipeline author can act on."""
    if error.status == 404:
        return ClusterError(
            f"the FineTune CRD ({PLURAL}.{GROUP}) is not installed or {namespace} does not "
            "exist: install the medops chart (docs/cluster.md)"
        )
    if error.status == 403:
        return ClusterError(
            f"this pod's service account may not create {PLURAL}.{GROUP} in {namespace}: "
            "grant it create and get on that resource (docs/cluster.md, RBAC)"
        )
    return ClusterError(f"creating a FineTune in {namespace} failed: HTTP {error.status}")


def _custom_objects_api() -> client.CustomObjectsApi:
    """In a pod: its service account; elsewhere (debugging): the local kubeconfig."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.CustomObjectsApi()


def _own_namespace() -> str:
    if not _NAMESPACE_FILE.is_file():
        raise ClusterError("not in a pod: set cluster.finetune.namespace")
    return _NAMESPACE_FILE.read_text().strip()
