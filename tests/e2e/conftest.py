"""`make e2e`: the cluster path on real engines, short of a kubelet.

Every container here runs the image `make images` built (``MEDOPS_E2E_IMAGE``), on the
host network with everything bound to loopback, and is removed by its id when the test
ends: an e2e run stops only what it started.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any

import docker
import pytest
from docker.models.containers import Container

IMAGE = os.environ.get("MEDOPS_E2E_IMAGE", "ghcr.io/medops/medops-cpu:0.1.0")


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    client = docker.from_env()
    try:
        client.images.get(IMAGE)
    except docker.errors.ImageNotFound:
        pytest.fail(f"image {IMAGE} is not built here: run `make images` (make e2e does)")
    yield client
    client.close()


@pytest.fixture
def start_container(docker_client: docker.DockerClient) -> Iterator[Callable[..., Container]]:
    """Start a detached container from the medops image; each is removed by id at teardown."""
    started: list[Container] = []

    def start(*command: str, **options: Any) -> Container:
        options.setdefault("network_mode", "host")
        options.setdefault("read_only", True)
        options.setdefault("tmpfs", {"/tmp": "rw,exec"})
        container = docker_client.containers.run(
            IMAGE, list(command) or None, detach=True, **options
        )
        started.append(container)
        return container

    yield start
    for container in started:
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)
