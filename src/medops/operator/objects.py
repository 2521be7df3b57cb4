"""What every object the operator creates shares: ownership, labels, a restricted pod.

Owner references make Kubernetes' garbage collector delete the children with the custom
resource; the security contexts satisfy the Pod Security "restricted" profile, with a
read-only root filesystem and writable scratch space only where mounted.
"""

from __future__ import annotations

from typing import Any

from medops.registry.tracking import TRACKING_ENV

GROUP = "medops.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
MANAGED_BY = "medops-operator"
RECIPE_DIR = "/etc/medops"
RECIPE_FILE = "recipe.yaml"
# the medops images' numeric non-root user (components/images/Dockerfile), so that
# runAsNonRoot can be verified
RUN_AS = 10001
# the API keys file of a medops predictor: beside the recipe, not inside it, because the
# kubelet cannot create a mount point inside a (read-only) ConfigMap volume
API_KEYS_DIR = "/etc/medops-api-keys"
API_KEYS_KEY = "keys"  # the Secret's key, also the file's name
API_KEYS_ENV = "MEDOPS_API_KEYS_FILE"


def owner_reference(parent: dict[str, Any]) -> dict[str, Any]:
    """The parent as controller owner: deleting it deletes the child."""
    meta = parent["metadata"]
    return {
        "apiVersion": parent["apiVersion"],
        "kind": parent["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def labels(parent: dict[str, Any], component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "medops",
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        f"{GROUP}/{parent['kind'].lower()}": parent["metadata"]["name"],
    }


def child_metadata(parent: dict[str, Any], name: str, component: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": parent["metadata"]["namespace"],
        "labels": labels(parent, component),
        "ownerReferences": [owner_reference(parent)],
    }


def pod_security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "fsGroup": RUN_AS,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def resource_limits(cpu: str | int, memory: str | int, gpus: int = 0) -> dict[str, Any]:
    """Requests equal to limits (Guaranteed QoS); GPUs only when asked for."""
    amounts: dict[str, Any] = {"cpu": str(cpu), "memory": str(memory)}
    if gpus:
        amounts["nvidia.com/gpu"] = str(gpus)
    return {"requests": dict(amounts), "limits": dict(amounts)}


def gpu_tolerations() -> list[dict[str, Any]]:
    """GPU node pools are usually tainted ``nvidia.com/gpu``: a GPU pod must tolerate it."""
    return [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]


def scratch_volume() -> tuple[dict[str, Any], dict[str, Any]]:
    """/tmp as an emptyDir: the only writable path besides explicit data mounts."""
    return {"name": "tmp", "emptyDir": {"sizeLimit": "2Gi"}}, {"name": "tmp", "mountPath": "/tmp"}


def recipe_volume(configmap: str, key: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The recipe ConfigMap's ``key`` as ``/etc/medops/recipe.yaml``, read-only."""
    volume = {
        "name": "recipe",
        "configMap": {"name": configmap, "items": [{"key": key, "path": RECIPE_FILE}]},
    }
    return volume, {"name": "recipe", "mountPath": RECIPE_DIR, "readOnly": True}


def medops_env(mlflow: dict[str, Any]) -> dict[str, Any]:
    """``env``/``envFrom`` of a medops container: MLflow URI from the spec, credentials (and
    artifact-store keys) from the Secret, HOME on the writable /tmp."""
    env = [
        {"name": TRACKING_ENV, "value": mlflow["trackingUri"]},
        {"name": "MLFLOW_DISABLE_TELEMETRY", "value": "true"},
        {"name": "HOME", "value": "/tmp"},
    ]
    wiring: dict[str, Any] = {"env": env}
    if mlflow.get("secretRef"):
        wiring["envFrom"] = [{"secretRef": {"name": mlflow["secretRef"]}}]
    return wiring


def api_keys_volume(secret: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """Volume, read-only mount and env var that hand ``medops serve`` the keys file.

    Not optional: with auth on, a missing Secret keeps the pod from starting (the kubelet
    retries until it exists) instead of starting a server without keys. Mode 0440 with
    the pod's fsGroup: readable by the server, by no other uid.
    """
    volume = {
        "name": "api-keys",
        "secret": {
            "secretName": secret,
            "items": [{"key": API_KEYS_KEY, "path": API_KEYS_KEY}],
            "defaultMode": 0o440,
            "optional": False,
        },
    }
    mount = {"name": "api-keys", "mountPath": API_KEYS_DIR, "readOnly": True}
    env = {"name": API_KEYS_ENV, "value": f"{API_KEYS_DIR}/{API_KEYS_KEY}"}
    return volume, mount, env
