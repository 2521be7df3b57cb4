"""What a ModelDeployment author can make the operator reach (issue 22, findings 1 and 2).

Each test is an attack that succeeded before the fix: a local listener stands in for a
URL of the attacker's choosing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar

import pytest

from medops.operator.inferenceservice import build_inferenceservice
from medops.operator.rayjob import build_rayjob
from medops.operator.registry import RegistryError, resolve_alias

ALLOWED_ENV = "MEDOPS_ALLOWED_TRACKING_URIS"  # the chart sets it from operator values
CHART_MLFLOW = "http://medops-mlflow.medops-system.svc:5000"
BODY = "INTERNAL-SECRET-3f9a in the registry's answer"


class _Listener(BaseHTTPRequestHandler):
    seen: ClassVar[list[dict[str, str]]] = []

    def _answer(self) -> None:
        self.seen.append(dict(self.headers))
        self.send_response(500)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(BODY.encode())

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def listener() -> Iterator[tuple[str, list[dict[str, str]]]]:
    _Listener.seen = []
    server = HTTPServer(("127.0.0.1", 0), _Listener)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", _Listener.seen
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def operator_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "medops-operator")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "operator-secret")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")


def test_a_tracking_uri_outside_the_allowlist_receives_nothing(
    listener, operator_credentials, monkeypatch
):
    url, seen = listener
    monkeypatch.setenv(ALLOWED_ENV, CHART_MLFLOW)
    with pytest.raises(RegistryError) as refused:
        resolve_alias(url, "condition-classifier", "champion")
    assert refused.value.reason == "TrackingUriNotAllowed"
    assert "operator.allowedTrackingUris" in str(refused.value)
    assert seen == [], "the operator sent a request (and its credentials) to the listener"


def test_a_registry_answer_is_never_copied_into_the_status(
    listener, operator_credentials, monkeypatch
):
    url, seen = listener
    monkeypatch.setenv(ALLOWED_ENV, f"{CHART_MLFLOW},{url}")
    with pytest.raises(RegistryError) as failed:
        resolve_alias(url, "condition-classifier", "champion")
    assert seen, "an allowed registry is asked"
    assert failed.value.reason == "RegistryUnavailable"
    message = str(failed.value)
    assert "INTERNAL-SECRET" not in message and url not in message, message


def test_every_pod_the_operator_builds_mounts_no_service_account_token(deployment, finetune):
    predictor = build_inferenceservice(deployment, "3")["spec"]["predictor"]
    assert predictor["automountServiceAccountToken"] is False
    rayjob = build_rayjob(finetune)["spec"]
    cluster = rayjob["rayClusterSpec"]
    pods = [
        rayjob["submitterPodTemplate"]["spec"],
        cluster["headGroupSpec"]["template"]["spec"],
        *(group["template"]["spec"] for group in cluster["workerGroupSpecs"]),
    ]
    assert all(pod["automountServiceAccountToken"] is False for pod in pods)


def test_every_scratch_volume_the_operator_builds_is_bounded(deployment, finetune):
    """Low finding 11: an emptyDir without sizeLimit can fill the node's disk (or memory)."""
    rayjob = build_rayjob(finetune)["spec"]
    cluster = rayjob["rayClusterSpec"]
    pods = [
        rayjob["submitterPodTemplate"]["spec"],
        cluster["headGroupSpec"]["template"]["spec"],
        *(group["template"]["spec"] for group in cluster["workerGroupSpecs"]),
        build_inferenceservice(deployment, "3")["spec"]["predictor"],
    ]
    empty = [v for pod in pods for v in pod.get("volumes", []) if "emptyDir" in v]
    assert empty and all(v["emptyDir"].get("sizeLimit") for v in empty), empty
