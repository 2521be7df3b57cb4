"""Level-triggered reconciliation: look at the world, make the children match, report.

Every handler (create, resume, update, timer) calls the same function for its resource,
so a duplicated event, a restart or a missed watch all converge on the same state. The
functions return the resource's whole new status; problems become conditions, never
exceptions, so ``kubectl describe`` shows them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from kubernetes.client.rest import ApiException

from medops.errors import MedopsError
from medops.operator import kube
from medops.operator.allowlist import Allowlist, NotAllowed
from medops.operator.inferenceservice import (
    SPEC_HASH_ANNOTATION,
    DeploymentSpecError,
    FeastWiring,
    api_keys_secret,
    build_inferenceservice,
    inferenceservice_name,
)
from medops.operator.objects import API_KEYS_KEY
from medops.operator.rayjob import build_rayjob, build_recipe_configmap, rayjob_name, recipe_yaml
from medops.operator.registry import RegistryError, check_approved, resolve_alias
from medops.operator.status import (
    TERMINAL,
    deployment_phase,
    finetune_phase,
    mirror_rayjob,
    now,
    read_results,
    set_condition,
)
from medops.recipe import RecipeError

RAYJOB_API = "ray.io/v1"
ISVC_API = "serving.kserve.io/v1beta1"
MISSING_KUBERAY = "KubeRay is not installed: the API server does not serve rayjobs.ray.io/v1"
MISSING_KSERVE = (
    "KServe is not installed: the API server does not serve "
    "inferenceservices.serving.kserve.io/v1beta1"
)
# where the operator sees FineTune volumes: <root>/<namespace>/<pvc> is that PVC's root
RESULTS_ENV = "MEDOPS_RESULTS_ROOT"


class RecipeMissing(MedopsError, LookupError):
    """The referenced ConfigMap or key does not exist (yet)."""


class _Conditions:
    """The resource's conditions as they are being updated during one reconciliation."""

    def __init__(self, status: dict[str, Any], at: str) -> None:
        self.items: list[dict[str, Any]] = list(status.get("conditions", []))
        self.at = at

    def set(self, kind: str, ok: bool | None, reason: str, message: str) -> None:
        self.items = set_condition(self.items, kind, ok, reason, message, self.at)

    def stop(self, status: dict[str, Any], phase: str, message: str) -> dict[str, Any]:
        """The status when reconciliation cannot go further this time."""
        return {**status, "phase": phase, "message": message, "conditions": self.items}


def reconcile_finetune(finetune: dict[str, Any]) -> dict[str, Any]:
    """Make sure the recipe ConfigMap and RayJob exist; mirror the RayJob into status."""
    previous = dict(finetune.get("status") or {})
    if previous.get("phase") in TERMINAL:
        return previous
    conditions = _Conditions(previous, now())
    try:
        return _reconcile_finetune(finetune, previous, conditions)
    except ApiException as error:
        return _api_failure(previous, conditions, error)


def _api_failure(
    previous: dict[str, Any], conditions: _Conditions, error: ApiException
) -> dict[str, Any]:
    message = f"Kubernetes API answered {error.status} {error.reason}"
    conditions.set("Reconciled", False, "KubernetesApiError", message)
    return conditions.stop(previous, previous.get("phase", "Pending"), message)


def _reconcile_finetune(
    finetune: dict[str, Any], previous: dict[str, Any], conditions: _Conditions
) -> dict[str, Any]:
    if not kube.served(RAYJOB_API, "rayjobs"):
        conditions.set("PrerequisitesReady", False, "MissingCRD", MISSING_KUBERAY)
        return conditions.stop(previous, "Pending", MISSING_KUBERAY)
    conditions.set("PrerequisitesReady", True, "Installed", "KubeRay serves RayJob")
    meta = finetune["metadata"]
    rayjob = kube.get(RAYJOB_API, "RayJob", meta["namespace"], rayjob_name(finetune))
    if rayjob is None and previous.get("rayJobName"):
        message = f"RayJob {previous['rayJobName']} was deleted before the run finished"
        conditions.set("Succeeded", False, "RayJobDeleted", message)
        return conditions.stop(previous, "Failed", message)
    if rayjob is None:
        try:
            Allowlist.from_env().check(finetune["spec"])
        except NotAllowed as error:
            conditions.set("SpecAllowed", False, "NotAllowed", str(error))
            return conditions.stop(previous, "Failed", str(error))
        try:
            rayjob = _start(finetune)
        except RecipeError as error:
            conditions.set("RecipeValid", False, "InvalidRecipe", str(error))
            return conditions.stop(previous, "Failed", str(error))
        except RecipeMissing as error:
            conditions.set("RecipeValid", False, "RecipeNotFound", str(error))
            return conditions.stop(previous, "Pending", str(error))
        except kube.ForeignObject as error:
            conditions.set("Reconciled", False, "ForeignObject", str(error))
            return conditions.stop(previous, "Failed", str(error))
    # derived from the world, not from history: a RayJob exists only for an accepted recipe,
    # and a timer pass racing the create handler must not drop this condition
    conditions.set("RecipeValid", True, "Valid", "recipe accepted")
    conditions.set("Reconciled", True, "Synced", "recipe ConfigMap and RayJob in place")
    results, note = None, ""
    if finetune_phase(rayjob.get("status") or {}) == "Succeeded":
        results, note = _results(finetune)
    current = {**previous, "conditions": conditions.items}
    return mirror_rayjob(current, rayjob, results, note, conditions.at)


def _start(finetune: dict[str, Any]) -> dict[str, Any]:
    meta, spec = finetune["metadata"], finetune["spec"]
    referenced = None
    if "recipeRef" in spec:
        ref = spec["recipeRef"]
        referenced = kube.configmap_value(meta["namespace"], ref["name"], ref["key"])
        if referenced is None:
            raise RecipeMissing(f"ConfigMap {ref['name']} with key {ref['key']} not found")
    kube.ensure(build_recipe_configmap(finetune, recipe_yaml(finetune, referenced)))
    rayjob, _ = kube.ensure(build_rayjob(finetune))
    return rayjob


def _results(finetune: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """The register stage's results when the operator can see the run's volume."""
    root = os.environ.get(RESULTS_ENV)
    namespace, pvc = finetune["metadata"]["namespace"], finetune["spec"]["storage"]["pvc"]
    if not root:
        return None, f"metrics not mirrored: the operator mounts no results volume ({RESULTS_ENV})"
    volume = Path(root) / namespace / pvc
    if not volume.is_dir():
        return (
            None,
            f"metrics not mirrored: PVC {pvc} of {namespace} is not mounted in the operator",
        )
    try:
        return read_results(volume / finetune["metadata"]["name"]), ""
    except (OSError, ValueError, KeyError) as error:
        return None, f"metrics not mirrored: register stage output unreadable ({error})"


def reconcile_deployment(deployment: dict[str, Any]) -> dict[str, Any]:
    """Resolve the alias and make the InferenceService serve that version."""
    previous = dict(deployment.get("status") or {})
    conditions = _Conditions(previous, now())
    try:
        return _reconcile_deployment(deployment, previous, conditions)
    except ApiException as error:
        return _api_failure(previous, conditions, error)


def _reconcile_deployment(
    deployment: dict[str, Any], previous: dict[str, Any], conditions: _Conditions
) -> dict[str, Any]:
    spec = deployment["spec"]
    phase = previous.get("phase", "Pending")
    if not kube.served(ISVC_API, "inferenceservices"):
        conditions.set("PrerequisitesReady", False, "MissingCRD", MISSING_KSERVE)
        return conditions.stop(previous, phase, MISSING_KSERVE)
    conditions.set("PrerequisitesReady", True, "Installed", "KServe serves InferenceService")
    wanted = f"{spec['modelName']}@{spec['alias']}"
    try:
        Allowlist.from_env().check(spec)
    except NotAllowed as error:
        conditions.set("SpecAllowed", False, "NotAllowed", str(error))
        return conditions.stop(previous, "Failed", str(error))
    try:
        resolved = resolve_alias(spec["mlflow"]["trackingUri"], spec["modelName"], spec["alias"])
        check_approved(spec["modelName"], resolved)
    except RegistryError as error:
        conditions.set("VersionResolved", False, error.reason, str(error))
        return conditions.stop(previous, phase, str(error))
    conditions.set("VersionResolved", True, "Resolved", f"{wanted} is version {resolved.version}")
    try:
        desired = build_inferenceservice(
            deployment,
            resolved.version,
            resolved.storage_uri,
            resolved.task,
            FeastWiring.from_env(),
        )
    except DeploymentSpecError as error:
        conditions.set("SpecValid", False, "InvalidSpec", str(error))
        return conditions.stop(previous, "Failed", str(error))
    conditions.set("SpecValid", True, "Valid", "spec accepted")
    try:
        isvc = _roll_out(deployment, desired)
    except kube.ForeignObject as error:
        conditions.set("Ready", False, "ForeignObject", str(error))
        return conditions.stop(previous, "Failed", str(error))
    served = previous.get("servedVersion")
    earlier = served if served and served != resolved.version else previous.get("previousVersion")
    phase, message = deployment_phase(isvc)
    canary = spec.get("canaryTrafficPercent")
    if canary is not None and canary < 100 and earlier:
        message = (
            f"canary: version {resolved.version} gets {canary}% of traffic, version {earlier} "
            "the rest; set canaryTrafficPercent to 100 to promote"
        )
    ready = phase == "Ready"
    keys_secret = api_keys_secret(deployment, resolved.task)
    if keys_secret and not ready:
        message = f"{message}; {_keys_hint(keys_secret)}"
    conditions.set("Ready", ready, "Serving" if ready else "Deploying", message)
    status = {
        **conditions.stop(previous, phase, message),
        "servedVersion": resolved.version,
        "previousVersion": earlier,
        "url": (isvc.get("status") or {}).get("url"),
        "apiKeysSecret": keys_secret,  # None removes it when keys are turned off
    }
    return {key: value for key, value in status.items() if value is not None}


def _keys_hint(secret: str) -> str:
    """What a pod stuck without its keys Secret waits for: the operator may not read
    Secrets, so it cannot tell whether this one exists, only name it."""
    return (
        f"the predictor pods mount Secret {secret} (key {API_KEYS_KEY}) and do not start "
        "until it exists: create it with lines from `python -m medops.serve.auth new KEY_ID`"
    )


def _roll_out(deployment: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
    """Create the InferenceService, or replace its spec when what we want has changed."""
    namespace = deployment["metadata"]["namespace"]
    name = inferenceservice_name(deployment)
    existing = kube.get(ISVC_API, "InferenceService", namespace, name)
    if existing is None:
        return kube.ensure(desired)[0]
    kube.check_owner(existing, desired)
    if _spec_hash(existing) != _spec_hash(desired):
        return kube.replace_spec(desired)
    return existing


def _spec_hash(obj: dict[str, Any]) -> str | None:
    return (obj.get("metadata", {}).get("annotations") or {}).get(SPEC_HASH_ANNOTATION)
