"""Run the pipeline's steps in the medops image: kfp.local's DockerRunner, set up as a pod is.

Each step runs in ``recipe.cluster.images.cpu`` (`make images` builds it) as uid 10001 with
a read-only root, a tmpfs ``/tmp``, and no network unless the recipe's tracking server is
one. It sees only what it needs, mounted at the host's own paths so the recipe's relative
paths resolve as they do on the host: the run's output directory (read-write) and the
recipe's local source files and model directory (read-only). Nothing of the host's venv or
checkout goes in.

kfp.local reports exit code 0 when an auto-removed container is gone before it waits, so
a step that failed could look successful: ``check_stage_outputs`` refuses any stage
directory without the manifest a stage writes last.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import kfp.local

from medops.assets import PKG_SCHEME
from medops.errors import ConfigurationError
from medops.launch.errors import PipelineFailed
from medops.manifest import MANIFEST
from medops.recipe import Recipe
from medops.registry.tracking import TRACKING_ENV

IMAGE_USER = "10001:0"  # the image's user; group 0 so group-writable host dirs are writable
# passed through to a step when set on the host: the tracking server and the keys that
# prepare and register read (never put on a command line)
PASSED_ENV = (
    TRACKING_ENV,
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MEDOPS_DEID_KEY",
)
SHM_SIZE = "1g"  # Ray's object store in each training step


def check_image(image: str) -> None:
    """A clear error when the image is not here: kfp would try to pull it and fail later."""
    import docker

    try:
        client = docker.from_env()
    except docker.errors.DockerException as error:
        raise ConfigurationError(
            f"--runner docker needs a running docker engine ({error.__class__.__name__}); "
            "`make images` starts one and builds the image"
        ) from None
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        raise ConfigurationError(
            f"image {image} (cluster.images.cpu) is not built on this machine: run `make "
            "images`, or set cluster.images.cpu to an image you have"
        ) from None
    finally:
        client.close()


def _local_inputs(recipe: Recipe) -> list[Path]:
    """The recipe's local files a step reads: sources and a model directory on disk."""
    uris = [source.uri for source in recipe.data.sources] + [recipe.model.base]
    paths = []
    for uri in uris:
        if uri.startswith(PKG_SCHEME) or "://" in uri:
            continue  # inside the image, or fetched by the step itself
        path = Path(uri).expanduser()
        if path.exists():
            paths.append(path.resolve())
    return sorted(set(paths))


def _network(recipe: Recipe) -> str:
    """No network at all unless a step must reach a tracking server (on this host)."""
    uri = os.environ.get(TRACKING_ENV) or recipe.registry.tracking_uri or ""
    return "host" if uri.startswith(("http://", "https://")) else "none"


def docker_runner(recipe: Recipe) -> kfp.local.DockerRunner:
    """The runner for ``recipe``: user, mounts, network and environment of each step."""
    from docker.types import Mount

    out = recipe.out.resolve()
    mounts = [Mount(str(out), str(out), type="bind")]
    mounts += [
        Mount(str(path), str(path), type="bind", read_only=True)
        for path in _local_inputs(recipe)
        if not path.is_relative_to(out)
    ]
    environment = {key: os.environ[key] for key in PASSED_ENV if key in os.environ}
    return kfp.local.DockerRunner(
        user=IMAGE_USER if os.getuid() == 0 else f"{os.getuid()}:{os.getgid()}",
        working_dir=str(Path.cwd()),
        mounts=mounts,
        environment=environment,
        network_mode=_network(recipe),
        read_only=True,
        tmpfs={"/tmp": "rw,exec"},  # noqa: S108 - the container's own /tmp
        shm_size=SHM_SIZE,
    )


@contextlib.contextmanager
def writable_by_image(directory: Path) -> Iterator[None]:
    """As root, let the image's group (0) write what this run creates under ``directory``.

    A non-root user runs the steps as themselves and needs nothing; root runs them as the
    image's uid 10001, which writes through group 0: the directory and what is already in
    it become group-writable, and the umask keeps new host-made directories so.
    """
    if os.getuid() != 0:
        yield
        return
    for path in [directory, *directory.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | 0o070)
    previous = os.umask(0o002)
    try:
        yield
    finally:
        os.umask(previous)


def check_stage_outputs(outputs: dict[str, Path], task_logs: dict[str, Path], log: Path) -> None:
    """Each stage directory must hold its manifest, whatever exit code kfp reported."""
    for stage, directory in outputs.items():
        if not (directory / MANIFEST).is_file():
            raise PipelineFailed(
                stage,
                task_logs.get(stage, log),
                f"{directory} holds no {MANIFEST}: the step failed or was killed in its "
                "container (kfp.local may report success when the container was already gone)",
            )
