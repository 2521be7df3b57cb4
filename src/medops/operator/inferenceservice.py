"""ModelDeployment + resolved model version -> KServe InferenceService (pure builder).

Two runtimes: ``medops`` is a custom predictor container running ``medops serve`` on a
registered version (encoders on CPU; generative causal-LM versions, LoRA adapter on the
base, on CPU or GPU); ``huggingface`` hands KServe's Hugging Face runtime the version's
storage URI (LLMs on GPU, KServe's own server). The version is pinned in the object, never
the alias, so a rollout is a spec change KServe can canary and roll back.

A generative version (its ``task`` tag, set by medops' register stage) served by runtime
``medops`` also gets Knative's concurrency autoscaling annotations and, unless
``spec.auth.apiKeys`` is false, the API keys file from a Secret whose name the operator
derives from the ModelDeployment's: the spec can turn keys off, never point elsewhere.

Where the chart enabled Feast, a medops predictor also gets the chart's
``feature_store.yaml`` (a ConfigMap of its namespace) and the Redis and registry passwords
from the Secrets the chart names: the operator's environment says which, never the spec.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from medops.errors import MedopsError
from medops.features.config import CLUSTER_CONFIG_ENV, REDIS_PASSWORD_ENV
from medops.features.spec import FEATURE_STORE_YAML
from medops.operator.objects import (
    RECIPE_DIR,
    RECIPE_FILE,
    api_keys_volume,
    child_metadata,
    container_security_context,
    gpu_tolerations,
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
# tasks whose versions ``medops serve`` answers by generating text (OpenAI routes); the
# task plug-ins (medops.tasks) expose no such property yet, so the operator names them
GENERATIVE_TASKS = frozenset({"causal-lm", "instruct"})
KNATIVE = "autoscaling.knative.dev"
KPA = "kpa.autoscaling.knative.dev"
KPA_METRICS = ("concurrency", "rps")  # what Knative's own autoscaler scales on
NAME_MAX = 253  # a Secret name is a DNS subdomain
# the chart's Feast wiring, in the operator's environment (operator-deployment.yaml)
FEAST_CONFIGMAP_ENV = "MEDOPS_FEAST_CONFIGMAP"
FEAST_REDIS_SECRET_ENV = "MEDOPS_FEAST_REDIS_CREDENTIAL_REF"  # noqa: S105 (a variable's name)
FEAST_REGISTRY_SECRET_ENV = "MEDOPS_FEAST_REGISTRY_CREDENTIAL_REF"  # noqa: S105 (a variable's name)
FEAST_DIR = "/etc/medops-feast"  # beside the recipe: a ConfigMap volume takes no mount inside


class DeploymentSpecError(MedopsError, ValueError):
    """A ModelDeployment that cannot be turned into an InferenceService as written."""


def inferenceservice_name(deployment: dict[str, Any]) -> str:
    return deployment["metadata"]["name"]


def model_uri(deployment: dict[str, Any], version: str) -> str:
    return f"models:/{deployment['spec']['modelName']}/{version}"


def _medops_predictor(
    deployment: dict[str, Any],
    version: str,
    keys_secret: str | None,
    feast: FeastWiring | None,
) -> dict[str, Any]:
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
    predictor = {"containers": [container], "volumes": [recipe, tmp]}
    if keys_secret:
        _mount_api_keys(predictor, keys_secret)
    if feast is not None:
        _mount_feast(predictor, feast)
    if spec["resources"]["gpus"]:
        predictor["tolerations"] = gpu_tolerations()
    return predictor


@dataclass(frozen=True)
class FeastWiring:
    """The chart's Feast: its ConfigMap, and the Secrets (key ``password``) of its Redis and
    registry, each in the predictor's namespace; a Secret name is empty when none is asked."""

    configmap: str
    redis_secret: str = ""
    registry_secret: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> FeastWiring | None:
        """None unless the chart enabled Feast (it sets the ConfigMap's name)."""
        configmap = env.get(FEAST_CONFIGMAP_ENV)
        if not configmap:
            return None
        return cls(
            configmap, env.get(FEAST_REDIS_SECRET_ENV, ""), env.get(FEAST_REGISTRY_SECRET_ENV, "")
        )


def _secret_env(name: str, secret: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": "password"}}}


def _mount_feast(predictor: dict[str, Any], feast: FeastWiring) -> None:
    """The chart's feature_store.yaml read-only, its path in MEDOPS_FEATURE_STORE_CONFIG, and
    the passwords as the variables Feast (``${REDIS_PASSWORD}``) and libpq (PGPASSWORD) read.
    Not optional: a pod whose ConfigMap or Secret is missing waits rather than serving
    without its features."""
    (container,) = predictor["containers"]
    container["env"].append(
        {"name": CLUSTER_CONFIG_ENV, "value": f"{FEAST_DIR}/{FEATURE_STORE_YAML}"}
    )
    if feast.redis_secret:
        container["env"].append(_secret_env(REDIS_PASSWORD_ENV, feast.redis_secret))
    if feast.registry_secret:
        container["env"].append(_secret_env("PGPASSWORD", feast.registry_secret))
    container["volumeMounts"].append({"name": "feast", "mountPath": FEAST_DIR, "readOnly": True})
    items = [{"key": FEATURE_STORE_YAML, "path": FEATURE_STORE_YAML}]
    predictor["volumes"].append(
        {"name": "feast", "configMap": {"name": feast.configmap, "items": items}}
    )


def _mount_api_keys(predictor: dict[str, Any], secret: str) -> None:
    """The keys file read-only in the server's container, its path in MEDOPS_API_KEYS_FILE."""
    volume, mount, env = api_keys_volume(secret)
    (container,) = predictor["containers"]
    container["env"].append(env)
    container["volumeMounts"].append(mount)
    predictor["volumes"].append(volume)


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


def is_generative(task: str | None) -> bool:
    """Whether ``medops serve`` answers this version by generating text (OpenAI routes)."""
    return task in GENERATIVE_TASKS


def api_keys_secret_name(deployment: dict[str, Any]) -> str:
    """Derived from the ModelDeployment's name, never read from its spec: whoever may create
    a ModelDeployment must not be able to mount a Secret of their choice."""
    return f"{deployment['metadata']['name']}-api-keys"


def api_keys_secret(deployment: dict[str, Any], task: str | None) -> str | None:
    """The Secret the predictor mounts, or None when it serves without API keys.

    ``spec.auth.apiKeys`` decides; unset, keys are on exactly for a generative version
    served by runtime medops (an open LLM endpoint is the expensive one to leave open).
    """
    spec = deployment["spec"]
    wanted = (spec.get("auth") or {}).get("apiKeys")
    if wanted is None:
        wanted = spec["runtime"] == "medops" and is_generative(task)
    return api_keys_secret_name(deployment) if wanted else None


def _check_auth(spec: dict[str, Any], keys_secret: str | None) -> None:
    if keys_secret and spec["runtime"] != "medops":
        raise DeploymentSpecError(
            "auth.apiKeys needs runtime medops: KServe's Hugging Face runtime does not read "
            "the medops API keys file"
        )
    if keys_secret and len(keys_secret) > NAME_MAX:
        raise DeploymentSpecError(
            f"the API keys Secret name {keys_secret[:40]}... would be longer than "
            f"{NAME_MAX} characters: shorten the ModelDeployment's name"
        )


def _check_scaling(scaling: dict[str, Any]) -> None:
    if scaling["minReplicas"] > scaling["maxReplicas"]:
        raise DeploymentSpecError(
            f"autoscaling.minReplicas {scaling['minReplicas']} > "
            f"maxReplicas {scaling['maxReplicas']}"
        )


def knative_annotations(scaling: dict[str, Any]) -> dict[str, str]:
    """Knative's autoscaler settings, the same values KServe derives from ``scaleMetric`` and
    ``scaleTarget``: written on a generative predictor so its revision states how it scales
    (a soft per-pod target of in-flight requests, which is what bounds an LLM's latency).
    Empty for ``cpu``: Knative's own autoscaler does not scale on CPU."""
    if scaling["metric"] not in KPA_METRICS:
        return {}
    return {
        f"{KNATIVE}/class": KPA,
        f"{KNATIVE}/metric": scaling["metric"],
        f"{KNATIVE}/target": str(scaling["target"]),
    }


def _predictor(
    deployment: dict[str, Any],
    version: str,
    storage_uri: str | None,
    task: str | None,
    feast: FeastWiring | None,
) -> dict[str, Any]:
    spec = deployment["spec"]
    keys_secret = api_keys_secret(deployment, task)
    _check_auth(spec, keys_secret)
    if spec["runtime"] != "medops":
        return _huggingface_predictor(deployment, storage_uri)
    predictor = _medops_predictor(deployment, version, keys_secret, feast)
    annotations = knative_annotations(spec["autoscaling"]) if is_generative(task) else {}
    if annotations:
        predictor["annotations"] = annotations
    return predictor


def build_inferenceservice(
    deployment: dict[str, Any],
    version: str,
    storage_uri: str | None = None,
    task: str | None = None,
    feast: FeastWiring | None = None,
) -> dict[str, Any]:
    """The InferenceService serving ``version`` (of ``task``, from the registry's tag); with
    ``canaryTrafficPercent`` set, KServe sends that share to the new revision and the rest
    to the last ready one. ``feast``: the chart's feature store, for runtime medops."""
    spec = deployment["spec"]
    scaling = spec["autoscaling"]
    _check_scaling(scaling)
    predictor = _predictor(deployment, version, storage_uri, task, feast)
    predictor.update(
        labels=labels(deployment, COMPONENT),  # on the pods: NetworkPolicies select them
        minReplicas=scaling["minReplicas"],
        maxReplicas=scaling["maxReplicas"],
        scaleMetric=scaling["metric"],
        scaleTarget=scaling["target"],
        securityContext=pod_security_context(),
        automountServiceAccountToken=False,  # the predictor never calls the Kubernetes API
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
