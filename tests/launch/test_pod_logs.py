"""`medops pipeline logs`: a run's task pods found by label, read in start order."""

from __future__ import annotations

import datetime
from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from medops.launch.errors import ClusterError
from medops.launch.pod_logs import run_logs, selector

RUN = "6f1c2d3e-0000-4000-8000-00000000abcd"
T0 = datetime.datetime(2026, 11, 25, 12, 0, tzinfo=datetime.UTC)


def pod(name: str, stage: str, minute: int, phase: str = "Succeeded") -> SimpleNamespace:
    return SimpleNamespace(
        metadata=SimpleNamespace(
            name=name,
            labels={"pipeline/runid": RUN, "medops.dev/stage": stage},
            creation_timestamp=T0 + datetime.timedelta(minutes=minute),
        ),
        status=SimpleNamespace(phase=phase),
    )


class FakeCore:
    """Filters pods by the equality/existence terms of a label selector, like the API."""

    def __init__(self, pods: list[SimpleNamespace]) -> None:
        self.pods = pods
        self.selectors: list[str] = []
        self.reads: list[tuple[str, str, str]] = []

    def list_namespaced_pod(self, namespace: str, label_selector: str) -> Any:
        self.selectors.append(label_selector)
        terms = [term.partition("=") for term in label_selector.split(",")]
        items = [
            p
            for p in self.pods
            if all(
                key in p.metadata.labels and (not eq or p.metadata.labels[key] == value)
                for key, eq, value in terms
            )
        ]
        return SimpleNamespace(items=items)

    def read_namespaced_pod_log(self, name: str, namespace: str, container: str) -> str:
        self.reads.append((name, namespace, container))
        if name.endswith("gone"):
            raise ApiException(status=404, reason="Not Found")
        return f"log of {name}"


@pytest.fixture
def core() -> FakeCore:
    return FakeCore(
        [
            pod("ct-train-2", "train", 5, "Running"),  # the retry
            pod("ct-prepare", "prepare", 0),
            pod("ct-train-1", "train", 2, "Failed"),
        ]
    )


def test_selectors_require_the_run_and_a_medops_stage() -> None:
    assert selector(RUN) == f"pipeline/runid={RUN},medops.dev/stage"
    assert selector(RUN, "train") == f"pipeline/runid={RUN},medops.dev/stage=train"


def test_all_task_pods_in_start_order(core: FakeCore) -> None:
    lines = list(run_logs(RUN, "kubeflow", core=core))
    assert lines == [
        "==> prepare pod ct-prepare (Succeeded) <==",
        "log of ct-prepare",
        "==> train pod ct-train-1 (Failed) <==",
        "log of ct-train-1",
        "==> train pod ct-train-2 (Running) <==",
        "log of ct-train-2",
    ]
    assert {container for _, _, container in core.reads} == {"main"}


def test_one_step(core: FakeCore) -> None:
    lines = list(run_logs(RUN, "team-a", "train", core=core))
    assert lines[0] == "==> train pod ct-train-1 (Failed) <==" and len(lines) == 4
    assert core.selectors == [selector(RUN, "train")]
    assert {namespace for _, namespace, _ in core.reads} == {"team-a"}


def test_no_pods_is_a_clear_error(core: FakeCore) -> None:
    with pytest.raises(ClusterError, match="no pods in namespace kubeflow match .*stage=deploy"):
        list(run_logs(RUN, "kubeflow", "deploy", core=core))


def test_a_pod_without_a_log_does_not_hide_the_others() -> None:
    core = FakeCore([pod("ct-prepare-gone", "prepare", 0), pod("ct-train", "train", 1)])
    lines = list(run_logs(RUN, "kubeflow", core=core))
    assert lines[1] == "(no log: HTTP 404 Not Found)" and lines[3] == "log of ct-train"
