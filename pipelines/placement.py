"""Where and how each task of a cluster run executes, from the recipe's ``cluster`` section.

Image, CPU/memory requests and limits, GPUs for local training, retries with backoff, the
shared volume, MLflow credentials and the de-identification key from Secrets, and a
``medops.dev/stage`` pod label that ``medops pipeline logs --step`` selects on. Embedded
runs skip all of it: kfp.local honours retry policies, and nothing else here means
anything on one machine.
"""

from kfp import kubernetes
from kfp.dsl import PipelineTask

from medops.recipe import Recipe
from medops.registry.tracking import TRACKING_ENV

DEID_KEY_ENV = "MEDOPS_DEID_KEY"  # medops.deid.pseudonyms reads the HMAC key from it

STAGE_LABEL = "medops.dev/stage"
# the tasks that talk to MLflow (training logs its run, register logs the model) and the
# FineTune hand-off, which only passes the tracking URI on to the operator
CREDENTIAL_STAGES = frozenset({"train", "register"})
TRACKING_URI_STAGES = CREDENTIAL_STAGES | {"finetune"}
# keys of cluster.mlflow_secret that a server may not need (no auth, no S3 artifact store)
OPTIONAL_MLFLOW_KEYS = (
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "MLFLOW_S3_ENDPOINT_URL",
)


def place(task: PipelineTask, stage: str, recipe: Recipe) -> None:
    """Apply the recipe's cluster placement for ``stage`` to ``task``."""
    cluster = recipe.cluster
    on_gpu = stage == "train" and recipe.resources.use_gpu
    task.set_container_image(cluster.images.gpu if on_gpu else cluster.images.cpu)
    pod = cluster.stages[stage]
    task.set_cpu_request(pod.cpu_request).set_cpu_limit(pod.cpu_limit)
    task.set_memory_request(pod.memory_request).set_memory_limit(pod.memory_limit)
    if on_gpu:
        gpus = recipe.resources.num_workers * recipe.resources.gpus_per_worker
        task.set_accelerator_type(cluster.accelerator).set_accelerator_limit(gpus)
        # GPU nodes are commonly tainted with their resource name
        kubernetes.add_toleration(task, key=cluster.accelerator, operator="Exists")
    retry = cluster.retry
    task.set_retry(retry.max_retries, retry.backoff, retry.backoff_factor, retry.backoff_max)
    kubernetes.add_pod_label(task, STAGE_LABEL, stage)
    if cluster.storage.pvc:
        kubernetes.mount_pvc(task, cluster.storage.pvc, cluster.storage.mount_path)
    secret = cluster.mlflow_secret
    if secret and stage in TRACKING_URI_STAGES and recipe.registry.tracking_uri is None:
        kubernetes.use_secret_as_env(task, secret, {TRACKING_ENV: TRACKING_ENV})
    if secret and stage in CREDENTIAL_STAGES:
        optional = {key: key for key in OPTIONAL_MLFLOW_KEYS}
        kubernetes.use_secret_as_env(task, secret, optional, optional=True)
    if cluster.deid_key_secret and stage == "prepare":
        kubernetes.use_secret_as_env(task, cluster.deid_key_secret, {DEID_KEY_ENV: DEID_KEY_ENV})
