"""ModelDeployment + resolved model version -> KServe InferenceService (pure builder).

Two runtimes: ``medops`` is a custom predictor container running ``medops serve`` on a
registered version (encoders on CPU); ``huggingface`` hands KServe's Hugging Face runtime
the version's storage URI (LLMs on GPU). The version is pinned in the object, never the
alias, so a rollout is a spec change KServe can canary and roll back.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from medops.errors import MedopsError
from medops.operator.objects import (
    RECIPE_DIR,
    RECIPE_FILE,
    child_metadata,
    container_security_context,
    labels,
    medops_env,
    pod_security_context,
    recipe_volume,
    resource_limits,
    scratch_volume,
)

COMPONENT = "modeldeployment"
PORT = 8080
VERSION_ANNOTATION = "medops.dev/model-version"
SPEC_HASH_ANNOTATION = "medops.dev/spec-hash"


class DeploymentSpecError(MedopsError, ValueError):
    """A ModelDeployment that cannot be turned into an InferenceService as written."""


def inferenceservice_name(deployment: dict[str, Any]) -> str:
    return deployment["metadata"]["name"]


def model_uri(deployment: dict[str, Any], version: str) -> str:
    return f"models:/{deployment['spec']['modelName']}/{version}"


def _medops_predictor(deployment: dict[str, Any], version: str) -> dict[str, Any]:
    spec = deployment["spec"]
    missing = [key for key in ("image", "recipeRef") if not spec.get(key)]
    if missing:
        raise DeploymentSpecError(f"runtime medops needs spec.{' and spec.'.join(missing)}")
    recipe, recipe_mount = recipe_volume(spec["recipeRef"]["name"], spec["recipeRef"]["key"])
    tmp, tmp_mount = scratch_volume()
    container = {
        "name": "kserve-container",
        "image": spec["image"],
        "command": ["medops", "serve", f"{RECIPE_DIR}/{RECIPE_FILE}"],
        "args": [
            "serve.host=0.0.0.0",
            f"serve.port={PORT}",
            "--model-uri",
            model_uri(deployment, version),
        ],
        "ports": [{"containerPort": PORT, "protocol": "TCP"}],
        **medops_env(spec["mlflow"]),
        "resources": _resources(spec),
        "securityContext": container_security_context(),
        "volumeMounts": [recipe_mount, tmp_mount],
    }
    return {"containers": [container], "volumes": [recipe, tmp]}


def _huggingface_predictor(deployment: dict[str, Any], storage_uri: str | None) -> dict[str, Any]:
    if not storage_uri:
        raise DeploymentSpecError(
            "runtime huggingface needs a model version whose storage location KServe can "
            "download (s3://, gs://, pvc://, https://)"
        )
    tmp, tmp_mount = scratch_volume()
    model = {
        "modelFormat": {"name": "huggingface"},
        "storageUri": storage_uri,
        "env": [{"name": "HOME", "value": "/tmp"}, {"name": "HF_HOME", "value": "/tmp/hf"}],
        "resources": _resources(deployment["spec"]),
        "securityContext": container_security_context(),
        "volumeMounts": [tmp_mount],
    }
    return {"model": model, "volumes": [tmp]}


def _resources(spec: dict[str, Any]) -> dict[str, Any]:
    wanted = spec["resources"]
    return resource_limits(wanted["cpu"], wanted["memory"], wanted["gpus"])


def build_inferenceservice(
    deployment: dict[str, Any], version: str, storage_uri: str | None = None
) -> dict[str, Any]:
    """The InferenceService serving ``version``; with ``canaryTrafficPercent`` set, KServe
    sends that share to the new revision and the rest to the last ready one."""
    spec = deployment["spec"]
    if spec["runtime"] == "medops":
        predictor = _medops_predictor(deployment, version)
    else:
        predictor = _huggingface_predictor(deployment, storage_uri)
    scaling = spec["autoscaling"]
    if scaling["minReplicas"] > scaling["maxReplicas"]:
        raise DeploymentSpecError(
            f"autoscaling.minReplicas {scaling['minReplicas']} > "
            f"maxReplicas {scaling['maxReplicas']}"
        )
    predictor.update(
        labels=labels(deployment, COMPONENT),  # on the pods: NetworkPolicies select them
        minReplicas=scaling["minReplicas"],
        maxReplicas=scaling["maxReplicas"],
        scaleMetric=scaling["metric"],
        scaleTarget=scaling["target"],
        securityContext=pod_security_context(),
    )
    if spec.get("canaryTrafficPercent") is not None:
        predictor["canaryTrafficPercent"] = spec["canaryTrafficPercent"]
    if spec.get("serviceAccountName"):
        predictor["serviceAccountName"] = spec["serviceAccountName"]
    metadata = child_metadata(deployment, inferenceservice_name(deployment), COMPONENT)
    spec_out = {"predictor": predictor}
    metadata["annotations"] = {
        VERSION_ANNOTATION: version,
        SPEC_HASH_ANNOTATION: spec_hash(spec_out),
    }
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": metadata,
        "spec": spec_out,
    }


def spec_hash(spec: dict[str, Any]) -> str:
    """Fingerprint of what we asked for: KServe's webhook adds defaults to the stored spec,
    so comparing specs directly would see a change on every sync."""
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
