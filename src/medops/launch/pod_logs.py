"""The logs of a Kubeflow Pipelines run, read from its pods with the Kubernetes client.

Label selectors (docs/cluster.md): KFP labels every pod of a run ``pipeline/runid=<RUN_ID>``;
a cluster compile labels each medops task's pod ``medops.dev/stage=<task>``
(``pipelines.placement.STAGE_LABEL``). Requiring both keeps KFP's own driver pods out;
``--step`` narrows to one task. The stage code runs in the pod's ``main`` container.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from medops.launch.errors import ClusterError
from pipelines.placement import STAGE_LABEL

RUN_LABEL = "pipeline/runid"
CONTAINER = "main"


def selector(run_id: str, step: str | None = None) -> str:
    """The label selector for a run's medops task pods, or one task's."""
    return f"{RUN_LABEL}={run_id},{STAGE_LABEL}" + (f"={step}" if step else "")


def run_logs(
    run_id: str, namespace: str, step: str | None = None, core: Any = None
) -> Iterator[str]:
    """Yield, per pod in start order (retries included), a header line and then its log."""
    core = core or _core_api()
    labels = selector(run_id, step)
    try:
        pods = core.list_namespaced_pod(namespace, label_selector=labels).items
    except ApiException as error:
        raise ClusterError(f"listing pods in {namespace} failed: HTTP {error.status}") from None
    if not pods:
        raise ClusterError(
            f"no pods in namespace {namespace} match {labels}: a wrong namespace or step, "
            "or pods already garbage-collected"
        )
    for pod in sorted(pods, key=lambda p: (p.metadata.creation_timestamp, p.metadata.name)):
        stage = pod.metadata.labels.get(STAGE_LABEL)
        yield f"==> {stage} pod {pod.metadata.name} ({pod.status.phase}) <=="
        try:
            yield core.read_namespaced_pod_log(pod.metadata.name, namespace, container=CONTAINER)
        except ApiException as error:
            yield f"(no log: HTTP {error.status} {error.reason})"


def _core_api() -> client.CoreV1Api:
    try:
        config.load_kube_config()
    except (config.ConfigException, OSError):
        try:
            config.load_incluster_config()
        except config.ConfigException:
            raise ClusterError(
                "no Kubernetes credentials: set KUBECONFIG or run inside the cluster"
            ) from None
    return client.CoreV1Api()
