"""Servers the tests start on the loopback: a free port, and waiting for one to answer."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from docker.models.containers import Container

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A port nothing listens on now, on the loopback."""
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def wait_http(
    url: str,
    timeout: float,
    headers: dict[str, str] | None = None,
    ready: Callable[[httpx.Response], bool] = lambda r: r.status_code == 200,
    process: subprocess.Popen[bytes] | None = None,
    log: Path | None = None,
    container: Container | None = None,
) -> httpx.Response:
    """Poll ``url`` until ``ready``; fail early, with its output, if what serves it died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            response = httpx.get(url, headers=headers, timeout=5)
            if ready(response):
                return response
        except httpx.HTTPError:
            pass
        if process is not None and process.poll() is not None:
            raise AssertionError(f"{url}: server exited:\n{log.read_text() if log else ''}")
        if container is not None:
            container.reload()
            if container.status == "exited":
                output = container.logs(tail=60).decode(errors="replace")
                raise AssertionError(f"{url}: container exited:\n{output}")
        time.sleep(1)
    raise AssertionError(f"{url} not ready in {timeout}s")
