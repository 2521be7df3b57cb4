"""End to end: ``python -m medops.serve.server`` in a subprocess, called over HTTP."""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from medops.serve import server as server_module
from medops.serve.client import PredictError, predict_v1, predict_v2, wait_ready
from tests.support.network import free_port

from .conftest import CLASSES, Registry

MODEL = "condition-test"
# the planted MRN has letters: a bare number could appear in the trace timings by chance
SECRET = "Jane Doe MRN QX-4412-ZK"


@dataclass(frozen=True)
class Server:
    base_url: str
    port: int
    log: Path


def wait_started(proc: subprocess.Popen, base_url: str, log: Path, timeout_s: float) -> None:
    """wait_ready in short slices, failing at once (with the log) if the server dies."""
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            pytest.fail(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            wait_ready(base_url, MODEL, timeout_s=1.0)
            return
        except TimeoutError:
            if time.monotonic() > deadline:
                raise


@pytest.fixture(scope="module")
def server(registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("server")
    port = free_port()
    log = workdir / "server.log"
    # the registry fixture set up the rest; DEBUG so the no-echo checks cover every level
    env = os.environ | {"PYTHONUNBUFFERED": "1", "KSERVE_LOGLEVEL": "DEBUG"}
    command = [
        sys.executable,
        *("-m", "medops.serve.server", str(registry.recipe_path)),
        *(f"serve.port={port}", f"serve.model_name={MODEL}"),  # model: the recipe's alias
    ]
    with log.open("wb") as sink:
        # cwd in tmp: anything MLflow might write by default lands there, not in the repo
        proc = subprocess.Popen(
            command, stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=workdir
        )
    try:
        base_url = f"http://127.0.0.1:{port}"
        wait_started(proc, base_url, log, timeout_s=60)
        yield Server(base_url, port, log)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_v1_prediction(server: Server):
    body = predict_v1(server.base_url, MODEL, ["I feel sad every morning", "sharp back pain"])
    first, second = body["predictions"]
    assert first["condition"] == "Depression" and second["condition"] == "Pain"
    assert list(first["probabilities"]) == CLASSES
    assert max(first["probabilities"].values()) == first["probabilities"]["Depression"]
    assert sum(second["probabilities"].values()) == pytest.approx(1.0)


def test_v2_prediction(server: Server):
    body = predict_v2(server.base_url, MODEL, ["a red rash", "so sad"])
    outputs = {output["name"]: output for output in body["outputs"]}
    assert outputs["condition"]["data"] == ["Acne", "Depression"]
    assert outputs["classes"]["data"] == CLASSES
    assert outputs["probabilities"]["shape"] == [2, 3]
    assert outputs["probabilities"]["datatype"] == "FP32"
    rash, sad = outputs["probabilities"]["data"][:3], outputs["probabilities"]["data"][3:]
    assert rash == pytest.approx([1 / 3] * 3)  # no keyword: the classes alike, Acne first
    assert sad[0] == pytest.approx(sad[2]) and sad[1] > 0.5


def listening_addresses(port: int) -> set[str]:
    """Local addresses in LISTEN state on ``port``, as /proc/net/tcp{,6} spell them."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.partition(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


def outbound_address() -> str | None:
    """This machine's non-loopback IPv4 address (a UDP connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") else address


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc/net")
def test_listens_on_loopback_only(server: Server):
    assert listening_addresses(server.port) == {"0100007F"}  # 127.0.0.1, no IPv6, no 0.0.0.0
    address = outbound_address()
    if address is not None:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((address, server.port), timeout=2).close()


def test_errors_never_echo_request_text(server: Server):
    with pytest.raises(PredictError, match=r"HTTP 400.*instance 1 has empty text") as bad:
        predict_v1(server.base_url, MODEL, [SECRET, "  "])
    # a failing model's 500 is checked in-process (test_predictor): a registered version
    # is data, so nothing served here can be made to fail on a chosen text
    malformed = {
        "inputs": [{"name": "text", "shape": "one", "datatype": "BYTES", "data": [SECRET]}]
    }
    response = httpx.post(f"{server.base_url}/v2/models/{MODEL}/infer", json=malformed)
    assert response.status_code == 422 and "shape" in response.json()["error"]
    assert "QX-4412" not in str(bad.value) and "QX-4412" not in response.text

    deadline = time.monotonic() + 5  # the access line for the last request proves the log is live
    while '/infer HTTP/1.1" 422' not in server.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    log = server.log.read_text()
    assert '/infer HTTP/1.1" 422' in log and "InvalidInput" in log
    assert "QX-4412" not in log and "Jane" not in log


def wait_for_log(log: Path, line: str, timeout_s: float = 5.0) -> str:
    """The server log once ``line`` is in it: the access line of a request proves it live."""
    deadline = time.monotonic() + timeout_s
    while line not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    text = log.read_text()
    assert line in text
    return text


def test_model_control_is_not_served_and_the_model_stays_up(server: Server):
    for action in ("unload", "load"):
        url = f"{server.base_url}/v2/repository/models/{MODEL}/{action}"
        assert httpx.post(url, timeout=10).status_code == 404
    assert httpx.post(f"{server.base_url}/v2/repository/index", timeout=10).status_code == 404
    ready = httpx.get(f"{server.base_url}/v2/health/ready", timeout=10)
    assert ready.status_code == 200 and ready.json() == {"ready": True}
    body = predict_v1(server.base_url, MODEL, ["so sad"], timeout_s=10)
    assert body["predictions"][0]["condition"] == "Depression"


def test_binary_and_headerless_requests_over_http(server: Server):
    url = f"{server.base_url}/v2/models/{MODEL}/infer"
    tensor = b"".join(struct.pack("<I", len(e)) + e for e in [SECRET.encode() + b"\xff"])
    spec = {"name": "text", "shape": [1], "datatype": "BYTES"}
    head = json.dumps({"inputs": [spec | {"parameters": {"binary_data_size": len(tensor)}}]})
    length = {"Inference-Header-Content-Length": str(len(head))}
    not_utf8 = httpx.post(url, content=head.encode() + tensor, headers=length, timeout=10)
    assert not_utf8.status_code == 400 and "element 0 is not UTF-8" in not_utf8.text
    words = {"Inference-Header-Content-Length": "forty"}
    not_number = httpx.post(url, content=head.encode() + tensor, headers=words, timeout=10)
    assert not_number.status_code == 400 and "not a whole number" in not_number.text
    # tritonclient.http sends JSON with no Content-Type
    plain = json.dumps({"inputs": [spec | {"data": ["knee pain"]}]}).encode()
    served = httpx.post(url, content=plain, timeout=10)
    assert served.status_code == 200, served.text
    query = httpx.get(f"{server.base_url}/v2/health/ready", params={"note": SECRET}, timeout=10)
    assert query.status_code == 200
    log = wait_for_log(server.log, '"GET /v2/health/ready?... HTTP/1.1" 200')
    assert "QX-4412" not in not_utf8.text + not_number.text
    assert "QX-4412" not in log and "Jane" not in log


def test_cli_reads_model_uri_between_overrides(registry: Registry, monkeypatch):
    calls = []
    monkeypatch.setattr(server_module, "serve", lambda recipe, uri: calls.append((recipe, uri)))
    argv = [str(registry.recipe_path), "serve.port=9999", "--model-uri", "models:/x/2"]
    server_module.main([*argv, "serve.host=127.0.0.2"])
    ((recipe, uri),) = calls
    assert uri == "models:/x/2"
    assert (recipe.serve.host, recipe.serve.port) == ("127.0.0.2", 9999)
    assert server_module.default_model_uri(recipe) == "models:/condition-classifier@champion"


def test_wait_ready_times_out_with_a_clear_error():
    with pytest.raises(TimeoutError, match=r"model 'nope' at http://127\.0\.0\.1:\d+ not ready"):
        wait_ready(f"http://127.0.0.1:{free_port()}", "nope", timeout_s=0.5)
