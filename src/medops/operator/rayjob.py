"""FineTune -> recipe ConfigMap + KubeRay RayJob (pure builders).

The RayJob's driver runs the very same ``medops stage`` commands a laptop runs, one per
stage, each writing ``<mountPath>/<finetune>/<stage>`` on the shared volume; training
fans out over the worker group through Ray Train. Cluster facts (worker count, GPUs,
output directory) reach the recipe as ``key=value`` overrides, so the recipe file stays
the one the user wrote and is validated with exactly the overrides the job applies.
"""

from __future__ import annotations

import shlex
from typing import Any

import yaml

from medops.operator.objects import (
    RECIPE_DIR,
    RECIPE_FILE,
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
from medops.recipe import RecipeError, build_recipe
from medops.stages import PRODUCER, STAGES

COMPONENT = "finetune"
# the stage whose output directory each stage input names
SUBMITTER = {"cpu": "500m", "memory": "1Gi"}
FINISHED_TTL_SECONDS = 600  # keep the finished Ray cluster's pods this long for logs
MODEL_CACHE_DIR = ".medops-model-cache"  # under the shared volume's mount path
# medops.model.gguf_cache.CACHE_ENV (the operator never imports the model runtime; a test
# keeps the two names equal)
MODEL_CACHE_ENV = "MEDOPS_MODEL_CACHE"


def rayjob_name(finetune: dict[str, Any]) -> str:
    return finetune["metadata"]["name"]


def recipe_configmap_name(finetune: dict[str, Any]) -> str:
    return f"{finetune['metadata']['name']}-recipe"


def run_dir(finetune: dict[str, Any]) -> str:
    """Where the stages of this FineTune write, inside the shared volume."""
    return f"{finetune['spec']['storage']['mountPath'].rstrip('/')}/{finetune['metadata']['name']}"


def recipe_overrides(finetune: dict[str, Any]) -> list[str]:
    """The cluster's facts as recipe overrides: where to write, how many workers, GPUs."""
    resources = finetune["spec"]["resources"]
    gpus = resources["gpusPerWorker"]
    return [
        f"output_dir={run_dir(finetune)}",
        f"resources.num_workers={resources['workers']}",
        f"resources.use_gpu={'true' if gpus else 'false'}",
        f"resources.gpus_per_worker={gpus}",
    ]


def recipe_yaml(finetune: dict[str, Any], referenced: str | None = None) -> str:
    """The recipe text the run uses (inline, or the referenced ConfigMap's ``referenced``
    text), checked with the typed recipe model; RecipeError names the bad key."""
    raw = finetune["spec"].get("recipe")
    if raw is None:
        try:
            raw = yaml.safe_load(referenced or "")
        except yaml.YAMLError as error:
            raise RecipeError(f"recipe is not valid YAML: {error}") from None
        if not isinstance(raw, dict):
            raise RecipeError("recipe: top level must be a mapping of sections")
    recipe = build_recipe(raw, recipe_overrides(finetune))
    if recipe.registry.tracking_uri is not None:
        # the pods' MLflow credentials go to spec.mlflow.trackingUri, which the platform's
        # allowlist checked; a recipe must not name another server
        raise RecipeError(
            "registry.tracking_uri: a FineTune logs to spec.mlflow.trackingUri (checked against "
            "the platform's allowlist); remove tracking_uri from the recipe"
        )
    return yaml.safe_dump(raw, sort_keys=False)


def build_recipe_configmap(finetune: dict[str, Any], text: str) -> dict[str, Any]:
    """A snapshot of the recipe owned by the FineTune: later edits to a referenced
    ConfigMap cannot change a run that already started."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": child_metadata(finetune, recipe_configmap_name(finetune), COMPONENT),
        "immutable": True,  # the snapshot a run reads cannot be edited under it
        "data": {RECIPE_FILE: text},
    }


def entrypoint(finetune: dict[str, Any]) -> str:
    """prepare && train && evaluate && register, each a ``medops stage`` command, as one
    ``sh -c`` word list.

    KubeRay pastes the entrypoint unquoted into the submitter's shell script and Ray
    re-quotes the words it receives, so a bare ``a && b`` would run ``b`` in the submitter
    pod; quoted as ``sh -c '<script>'`` it survives both and runs on the head. Prepare is
    skipped when its manifest is already on the volume: a pipeline that hands training to
    a FineTune has prepared the data there.
    """
    recipe = f"{RECIPE_DIR}/{RECIPE_FILE}"
    run = run_dir(finetune)
    overrides = recipe_overrides(finetune)
    commands = []
    for stage, spec in STAGES.items():
        inputs = spec.inputs
        args = ["medops", "stage", recipe, "--name", stage, "--out", f"{run}/{stage}"]
        for name in inputs:
            args += ["--input", f"{name}={run}/{PRODUCER[name]}"]
        command = shlex.join(args + overrides)
        if not inputs:  # the first stage: prepare
            command = f"{{ test -f {shlex.quote(f'{run}/{stage}/manifest.json')} || {command}; }}"
        commands.append(command)
    return shlex.join(["sh", "-c", " && ".join(commands)])


def _volumes(finetune: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    storage = finetune["spec"]["storage"]
    memory = finetune["spec"]["resources"]["memory"]
    recipe, recipe_mount = recipe_volume(recipe_configmap_name(finetune), RECIPE_FILE)
    tmp, tmp_mount = scratch_volume()
    volumes = [
        recipe,
        tmp,
        {"name": "data", "persistentVolumeClaim": {"claimName": storage["pvc"]}},
        # Ray's object store, in memory: at most the pod's own memory
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": memory}},
    ]
    mounts = [
        recipe_mount,
        tmp_mount,
        {"name": "data", "mountPath": storage["mountPath"]},
        {"name": "dshm", "mountPath": "/dev/shm"},
    ]
    return volumes, mounts


def _env(finetune: dict[str, Any]) -> dict[str, Any]:
    """The medops env, plus the model cache on the shared volume: the driver converts a GGUF
    base once and every worker node reads that copy (a pod's own /tmp is its node's alone)."""
    wiring = medops_env(finetune["spec"]["mlflow"])
    cache = f"{finetune['spec']['storage']['mountPath'].rstrip('/')}/{MODEL_CACHE_DIR}"
    wiring["env"] = [*wiring["env"], {"name": MODEL_CACHE_ENV, "value": cache}]
    return wiring


def _pod(finetune: dict[str, Any], container_name: str, gpus: int) -> dict[str, Any]:
    spec = finetune["spec"]
    volumes, mounts = _volumes(finetune)
    pod: dict[str, Any] = {
        "securityContext": pod_security_context(),
        "automountServiceAccountToken": False,  # Ray pods never call the Kubernetes API
        "containers": [
            {
                "name": container_name,
                "image": spec["image"],
                **_env(finetune),
                "resources": resource_limits(
                    spec["resources"]["cpu"], spec["resources"]["memory"], gpus
                ),
                "securityContext": container_security_context(),
                "volumeMounts": mounts,
            }
        ],
        "volumes": volumes,
    }
    if spec.get("serviceAccountName"):
        pod["serviceAccountName"] = spec["serviceAccountName"]
    if gpus:
        pod["tolerations"] = gpu_tolerations()
    return pod


def _submitter(finetune: dict[str, Any]) -> dict[str, Any]:
    """The pod that runs ``ray job submit``; KubeRay fills in its command."""
    tmp, tmp_mount = scratch_volume()
    return {
        "metadata": {"labels": labels(finetune, COMPONENT)},
        "spec": {
            "restartPolicy": "Never",
            "securityContext": pod_security_context(),
            "automountServiceAccountToken": False,
            "containers": [
                {
                    "name": "ray-job-submitter",
                    "image": finetune["spec"]["image"],
                    "env": [{"name": "HOME", "value": "/tmp"}],
                    "resources": resource_limits(SUBMITTER["cpu"], SUBMITTER["memory"]),
                    "securityContext": container_security_context(),
                    "volumeMounts": [tmp_mount],
                }
            ],
            "volumes": [tmp],
        },
    }


def build_rayjob(finetune: dict[str, Any]) -> dict[str, Any]:
    """A RayJob: a head that runs the stages (no Ray tasks on it) and ``workers`` training
    workers, the only pods that get GPUs; the cluster shuts down when the job ends."""
    spec = finetune["spec"]
    metadata = child_metadata(finetune, rayjob_name(finetune), COMPONENT)
    workers = spec["resources"]["workers"]
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "metadata": metadata,
        "spec": {
            "entrypoint": entrypoint(finetune),
            "submissionMode": "K8sJobMode",
            "submitterPodTemplate": _submitter(finetune),
            "backoffLimit": 0,
            "shutdownAfterJobFinishes": True,
            "ttlSecondsAfterFinished": FINISHED_TTL_SECONDS,
            "rayClusterSpec": {
                "enableInTreeAutoscaling": False,
                "authOptions": {"mode": "token"},
                "headGroupSpec": {
                    # the submitter reaches the head's dashboard over the pod network;
                    # Ray's token auth and the NetworkPolicy guard it
                    "rayStartParams": {"num-cpus": "0", "dashboard-host": "0.0.0.0"},  # noqa: S104
                    "template": {
                        "metadata": {"labels": metadata["labels"]},
                        "spec": _pod(finetune, "ray-head", gpus=0),
                    },
                },
                "workerGroupSpecs": [
                    {
                        "groupName": "workers",
                        "replicas": workers,
                        "minReplicas": workers,
                        "maxReplicas": workers,
                        "rayStartParams": {},
                        "template": {
                            "metadata": {"labels": metadata["labels"]},
                            "spec": _pod(
                                finetune, "ray-worker", gpus=spec["resources"]["gpusPerWorker"]
                            ),
                        },
                    }
                ],
            },
        },
    }
