"""A stand-in for the Kubeflow Pipelines v2 REST API on 127.0.0.1, recording every request.

It answers what ``kfp.Client`` asks while submitting a run and reading one: healthz,
experiments (list by name, create), runs (create, get). With ``token`` set, any request
without ``Authorization: Bearer <token>`` gets 401, as behind an authenticating proxy.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

RUN_ID = "6f1c2d3e-0000-4000-8000-00000000abcd"
TASKS = [
    {"display_name": "prepare", "state": "SUCCEEDED"},
    {"display_name": "train", "state": "RUNNING"},
]


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    authorization: str | None
    body: Any


@dataclass
class KfpStandIn:
    url: str
    token: str | None = None
    healthz_status: int = 200
    requests: list[Recorded] = field(default_factory=list)
    experiments: list[dict[str, Any]] = field(default_factory=list)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def paths(self) -> list[str]:
        return [f"{r.method} {r.path}" for r in self.requests]


def _handler(standin: KfpStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            return

        def _reply(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def _handle(self, method: str) -> None:
            url = urlparse(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            auth = self.headers.get("Authorization")
            standin.requests.append(Recorded(method, url.path, parse_qs(url.query), auth, body))
            if standin.token and auth != f"Bearer {standin.token}":
                return self._reply(401, {"error": "Unauthorized", "code": 16})
            route = (method, url.path)
            if route == ("GET", "/apis/v2beta1/healthz"):
                if 300 <= standin.healthz_status < 400:
                    return self._reply(standin.healthz_status, {}, {"Location": "/dex/auth"})
                if standin.healthz_status != 200:
                    return self._reply(standin.healthz_status, {"error": "no"})
                return self._reply(200, {"multi_user": False, "pipeline_store": "database"})
            if route == ("GET", "/apis/v2beta1/experiments"):
                return self._reply(
                    200, {"experiments": standin.experiments} if standin.experiments else {}
                )
            if route == ("POST", "/apis/v2beta1/experiments"):
                experiment = {**body, "experiment_id": "exp-1"}
                standin.experiments.append(experiment)
                return self._reply(200, experiment)
            if route == ("POST", "/apis/v2beta1/runs"):
                run = {**body, "run_id": RUN_ID, "state": "PENDING"}
                standin.runs[RUN_ID] = run
                return self._reply(200, run)
            if method == "GET" and url.path.startswith("/apis/v2beta1/runs/"):
                run = standin.runs.get(url.path.rsplit("/", 1)[-1])
                if run is None:
                    return self._reply(404, {"error": "run not found", "code": 5})
                details = {"run_details": {"task_details": TASKS}, "state": "RUNNING"}
                return self._reply(200, {**run, **details})
            return self._reply(404, {"error": f"no route {method} {url.path}", "code": 5})

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

    return Handler


@contextmanager
def kfp_standin(**settings: Any) -> Iterator[KfpStandIn]:
    """Serve a ``KfpStandIn`` on a free loopback port for the duration of the block."""
    standin = KfpStandIn(url="", **settings)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(standin))
    standin.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield standin
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def closed_port() -> str:
    """A loopback URL on which nothing listens."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"
