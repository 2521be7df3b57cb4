"""All of the operator's Kubernetes API calls (the custom resources' own status is written
by kopf from the handlers' patches).

Plain REST over the official client's ApiClient: in-cluster service-account credentials,
else the kubeconfig. Every write is idempotent: a create that meets 409 reuses the object
already there, because kopf may deliver an event twice.
"""

from __future__ import annotations

import functools
from typing import Any

from kubernetes import client, config
from kubernetes.client.rest import ApiException

from medops.errors import MedopsError

PLURALS = {"ConfigMap": "configmaps", "RayJob": "rayjobs", "InferenceService": "inferenceservices"}


@functools.cache
def api() -> client.ApiClient:
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.ApiClient()


def _call(method: str, path: str, body: Any = None, content_type: str | None = None) -> Any:
    headers = {"Accept": "application/json"}
    if content_type:
        headers["Content-Type"] = content_type
    return api().call_api(
        path,
        method,
        header_params=headers,
        body=body,
        response_type="object",
        auth_settings=["BearerToken"],
        _return_http_data_only=True,
    )


def _collection(api_version: str, kind: str, namespace: str) -> str:
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    return f"{prefix}/namespaces/{namespace}/{PLURALS[kind]}"


def served(api_version: str, plural: str) -> bool:
    """Whether the API server serves ``plural`` in ``api_version`` (is the CRD installed?)."""
    try:
        listing = _call("GET", f"/apis/{api_version}")
    except ApiException as error:
        if error.status == 404:
            return False
        raise
    return any(entry.get("name") == plural for entry in listing.get("resources", []))


def get(api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return _call("GET", f"{_collection(api_version, kind, namespace)}/{name}")
    except ApiException as error:
        if error.status == 404:
            return None
        raise


class ForeignObject(MedopsError, RuntimeError):
    """An object with the name the operator wants exists and another owner controls it."""


def _controller_uid(obj: dict[str, Any]) -> str | None:
    refs = obj.get("metadata", {}).get("ownerReferences") or []
    return next((ref.get("uid") for ref in refs if ref.get("controller")), None)


def check_owner(existing: dict[str, Any], wanted: dict[str, Any]) -> None:
    """Only an object the same resource controls is reused: one planted under the name the
    operator derives (a recipe ConfigMap with another recipe, an InferenceService serving
    another image) is never adopted or overwritten."""
    ours = _controller_uid(wanted)
    if ours is not None and _controller_uid(existing) != ours:
        meta = wanted["metadata"]
        raise ForeignObject(
            f"{wanted['kind']} {meta['name']} already exists and belongs to something else; "
            "delete or rename it, or rename this resource"
        )


def ensure(obj: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """Create ``obj`` or, if it exists already and is ours, return the existing one;
    (object, created). Someone else's object of that name raises ``ForeignObject``."""
    meta = obj["metadata"]
    path = _collection(obj["apiVersion"], obj["kind"], meta["namespace"])
    try:
        return _call("POST", path, body=obj), True
    except ApiException as error:
        if error.status != 409:
            raise
    existing = get(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
    if existing is None:  # deleted between our create and get: next sync creates it
        raise RuntimeError(f"{obj['kind']} {meta['name']} vanished during create")
    check_owner(existing, obj)
    return existing, False


def replace_spec(obj: dict[str, Any]) -> dict[str, Any]:
    """Set the whole spec and the annotations of an existing object (JSON patch: fields the
    new spec drops really go, e.g. a removed canaryTrafficPercent)."""
    meta = obj["metadata"]
    path = f"{_collection(obj['apiVersion'], obj['kind'], meta['namespace'])}/{meta['name']}"
    operations = [{"op": "replace", "path": "/spec", "value": obj["spec"]}]
    for key, value in meta.get("annotations", {}).items():
        escaped = key.replace("~", "~0").replace("/", "~1")
        operations.append({"op": "add", "path": f"/metadata/annotations/{escaped}", "value": value})
    return _call("PATCH", path, body=operations, content_type="application/json-patch+json")


def configmap_value(namespace: str, name: str, key: str) -> str | None:
    """One key of a ConfigMap; None when the ConfigMap or the key is missing."""
    found = get("v1", "ConfigMap", namespace, name)
    return None if found is None else (found.get("data") or {}).get(key)
