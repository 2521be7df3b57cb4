"""What KubeRay and KServe would do with the operator's objects, done with docker on one host.

The operator's RayJob and InferenceService are turned into ``docker run`` options the way
the kubelet and KubeRay turn them into pods: the same image, command, env, resource limits,
security context and volumes (ConfigMap, Secret, PVC and emptyDir become a read-only bind,
a bind and tmpfs), and ``ray start`` flags derived from ``rayStartParams`` and the container
limits as KubeRay derives them. Every pod gets the host network, so where pods would have
their own IP here every Ray node is 127.0.0.1 and has its own ports.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from docker.models.containers import Container

from medops.operator.objects import RUN_AS
from medops.operator.schema import load_crds, validate_resource
from tests.paths import ROOT
from tests.support.network import LOOPBACK, free_port, wait_http
from tests.support.postgres import postgres_database

StartContainer = Callable[..., Container]

# `ray start` on a worker node replaces a loopback --node-ip-address with the host's
# outward IP (services.resolve_ip_for_localhost), and refuses to join a cluster at all
# when RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 (the setting that makes Ray treat 127.0.0.1 as
# this machine's IP). With that IP every Ray server binds the outward interface or
# 0.0.0.0; with 127.0.0.1 they bind 127.0.0.1 only. So worker nodes run this `ray start`:
# the same CLI with the node IP pinned to 127.0.0.1, the stand-in for a pod IP. (The head
# needs no such help: with RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 its plain `ray start` keeps
# 127.0.0.1, and so do the job's driver and every Ray worker process in every pod.)
LOOPBACK_RAY_START = """\
import sys
import ray._private.ray_constants as constants
import ray._private.services as services
constants.ENABLE_RAY_CLUSTER = True  # this is a multi-node cluster, on one IP
services.get_node_ip_address = lambda address=None: "127.0.0.1"
from ray.scripts.scripts import main
sys.argv[0] = "ray"
sys.exit(main())
"""
# every port a raylet (and its agents) listens on; the defaults collide on one IP
# (dashboard agent 52365) or pick from one shared range (worker ports)
NODE_PORTS = (
    "node-manager-port",
    "object-manager-port",
    "runtime-env-agent-port",
    "dashboard-agent-grpc-port",
    "dashboard-agent-listen-port",
    "metrics-export-port",
)
HEAD_PORTS = ("port", "dashboard-port", "ray-client-server-port")
MAX_RESTARTS = 2
_QUANTITY = {"m": 1e-3, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
_QUANTITY.update({f"{unit}i": 1024.0 ** (i + 1) for i, unit in enumerate("KMGTPE")})


def quantity(value: str | int) -> float:
    """A Kubernetes quantity ("500m", "6Gi", 2) as a number."""
    match = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(value))
    if match is None:
        raise ValueError(f"not a quantity: {value!r}")
    return float(match[1]) * _QUANTITY.get(match[2], 1.0)


# -- the objects, as the API server stores them -------------------------------------------


def crds() -> list[dict[str, Any]]:
    return load_crds(sorted((ROOT / "manifests" / "crds").glob("*.yaml")))


def defaulted(example: str, **spec: Any) -> dict[str, Any]:
    """An example CR with ``spec`` keys replaced, defaulted from the CRD schema and given a
    uid (as tests/operator's fixtures build them)."""
    obj = yaml.safe_load((ROOT / "manifests" / "examples" / example).read_text())
    obj["spec"].update(spec)
    obj["metadata"]["uid"] = f"e2e-{secrets.token_hex(4)}"
    return validate_resource(obj, crds())


# -- pods as docker containers ---------------------------------------------------------------


def env_of(container: dict[str, Any]) -> dict[str, str]:
    if container.get("envFrom"):
        raise AssertionError("envFrom needs the Secret's values; the e2e objects have none")
    return {e["name"]: e["value"] for e in container.get("env", [])}


def run_options(
    pod: dict[str, Any], sources: dict[str, Path], extra_env: dict[str, str] | None = None
) -> dict[str, Any]:
    """``docker run`` options for the pod's single container: its user, security context,
    limits, env and volumes. ``sources`` maps each ConfigMap/Secret/PVC volume to a host
    path (a directory holding the items, or the PVC's directory)."""
    (container,) = pod["containers"]
    pod_security, security = pod["securityContext"], container["securityContext"]
    limits = container["resources"]["limits"]
    options: dict[str, Any] = {
        "user": f"{pod_security['runAsUser']}:{pod_security['runAsGroup']}",
        "group_add": [str(pod_security["fsGroup"])],
        "read_only": security["readOnlyRootFilesystem"],
        "cap_drop": security["capabilities"]["drop"],
        "security_opt": ["no-new-privileges"] if not security["allowPrivilegeEscalation"] else [],
        "environment": {**env_of(container), **(extra_env or {})},
        "mem_limit": int(quantity(limits["memory"])),
        "nano_cpus": int(quantity(limits["cpu"]) * 1e9),
        "volumes": {},
        "tmpfs": {},
    }
    volumes = {v["name"]: v for v in pod["volumes"]}
    for mount in container["volumeMounts"]:
        volume = volumes[mount["name"]]
        path = mount["mountPath"]
        empty_dir = volume.get("emptyDir")
        if empty_dir is not None and empty_dir.get("medium") == "Memory" and path == "/dev/shm":
            options["shm_size"] = int(quantity(empty_dir["sizeLimit"]))
        elif empty_dir is not None:  # the kubelet's emptyDir is a fresh directory: tmpfs here
            size = int(quantity(empty_dir.get("sizeLimit", "1Gi")))
            options["tmpfs"][path] = f"rw,exec,size={size},mode=1777"
        else:
            mode = "ro" if mount.get("readOnly") else "rw"
            options["volumes"][str(sources[mount["name"]])] = {"bind": path, "mode": mode}
    return options


def configmap_dir(base: Path, items: dict[str, str]) -> Path:
    """A ConfigMap volume's files, world-readable as the kubelet projects them (0644)."""
    base.mkdir(parents=True)
    base.chmod(0o755)
    for name, text in items.items():
        (base / name).write_text(text)
        (base / name).chmod(0o644)
    return base


def secret_dir(base: Path, items: dict[str, str], mode: int, group: int) -> Path:
    """A Secret volume: files of ``defaultMode`` owned by root and the pod's fsGroup."""
    base.mkdir(parents=True)
    base.chmod(0o755)
    for name, text in items.items():
        (base / name).write_text(text)
        os.chown(base / name, 0, group)
        (base / name).chmod(mode)
    return base


def shared_volume(path: Path) -> Path:
    """The PVC: one host directory every pod mounts, owned by the pods' fsGroup."""
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, RUN_AS, RUN_AS)
    path.chmod(0o2775)  # setgid: what the pods create stays in the fsGroup
    return path


# -- a Ray cluster from a RayJob -------------------------------------------------------------


def ray_start_params(group: dict[str, Any]) -> dict[str, str]:
    """``rayStartParams`` plus what KubeRay derives from the Ray container's limits when a
    param is absent: num-cpus (rounded up), memory (bytes) and num-gpus."""
    (container,) = group["template"]["spec"]["containers"]
    limits = container["resources"]["limits"]
    params = {key: str(value) for key, value in group["rayStartParams"].items()}
    params.setdefault("num-cpus", str(math.ceil(quantity(limits["cpu"]))))
    params.setdefault("memory", str(int(quantity(limits["memory"]))))
    if "nvidia.com/gpu" in limits:
        params.setdefault("num-gpus", str(limits["nvidia.com/gpu"]))
    return params


@dataclass
class RayNode:
    name: str
    container: Container
    ports: dict[str, int]
    params: dict[str, str]
    restarts: int = 0


@dataclass
class RayCluster:
    """A RayJob's cluster: a head pod and worker pods as containers, token auth on."""

    rayjob: dict[str, Any]
    start_container: StartContainer
    sources: dict[str, Path]
    token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    suffix: str = field(default_factory=lambda: secrets.token_hex(3))  # container names
    nodes: dict[str, RayNode] = field(default_factory=dict)
    head_ports: dict[str, int] = field(default_factory=dict)
    _started: int = 0

    @property
    def spec(self) -> dict[str, Any]:
        return self.rayjob["spec"]["rayClusterSpec"]

    @property
    def dashboard(self) -> str:
        return f"http://{LOOPBACK}:{self.head_ports['dashboard-port']}"

    @property
    def gcs(self) -> str:
        return f"{LOOPBACK}:{self.head_ports['port']}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def _auth_env(self) -> dict[str, str]:
        """What KubeRay puts in every pod of a cluster with ``authOptions.mode: token``
        (the token from the Secret it generates), and the loopback node IP (see
        LOOPBACK_RAY_START)."""
        if self.spec.get("authOptions", {}).get("mode") != "token":
            raise AssertionError("the RayJob must ask for Ray token auth")
        return {
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": self.token,
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        }

    def _flags(self, params: dict[str, str], ports: dict[str, int]) -> list[str]:
        """``--key=value`` flags: the params, this node's own ports, the loopback node IP,
        and worker ports the OS picks (as Ray's own several-raylets-on-one-host tests do),
        since raylets on one IP would hand out the same default range."""
        merged = {**params, **{key: str(value) for key, value in ports.items()}}
        merged.update({"node-ip-address": LOOPBACK, "min-worker-port": "0", "max-worker-port": "0"})
        return [f"--{key}={value}" for key, value in merged.items()]

    def _run(self, name: str, group: dict[str, Any], entrypoint: str, argv: list[str]) -> Container:
        options = run_options(group["template"]["spec"], self.sources, self._auth_env())
        return self.start_container(
            *argv,
            entrypoint=[entrypoint],
            name=f"{name}-{self.suffix}",
            labels={"medops.dev/e2e": "ray-cluster", "medops.dev/ray-node": name},
            **options,
        )

    def start_head(self) -> RayNode:
        group = self.spec["headGroupSpec"]
        params = ray_start_params(group)
        # the pod listens on its pod IP for the submitter (0.0.0.0); this host's stand-in
        # for the pod network is the loopback, so the dashboard binds 127.0.0.1
        assert params.pop("dashboard-host") == "0.0.0.0"  # what the RayJob says
        params["dashboard-host"] = LOOPBACK
        # (hidden) node-name: the pod, which on a pod network its node IP would identify
        params["node-name"] = "head"
        self.head_ports = {key: free_port() for key in HEAD_PORTS}
        ports = {**self.head_ports, **{key: free_port() for key in NODE_PORTS}}
        argv = ["start", "--head", "--block", *self._flags(params, ports)]
        node = RayNode("head", self._run("ray-head", group, "ray", argv), ports, params)
        self.nodes["head"] = node
        return node

    def start_worker(self) -> RayNode:
        """One more worker pod (KubeRay also recreates a lost one this way)."""
        (group,) = self.spec["workerGroupSpecs"]
        self._started += 1
        name = f"worker-{self._started}"
        params = {**ray_start_params(group), "node-name": name, "address": self.gcs}
        ports = {key: free_port() for key in NODE_PORTS}
        argv = ["-c", LOOPBACK_RAY_START, "start", "--block", *self._flags(params, ports)]
        node = RayNode(name, self._run(f"ray-{name}", group, "python", argv), ports, params)
        self.nodes[name] = node
        return node

    def start(self, timeout: float = 180) -> dict[str, str]:
        """The head, then the worker group's replicas; node name -> node id once alive."""
        self.start_head()
        self.wait_alive({"head"}, timeout)
        (group,) = self.spec["workerGroupSpecs"]
        for _ in range(group["replicas"]):
            self.start_worker()
        return self.wait_alive(set(self.nodes), timeout)

    def state(self, resource: str, **filters: str) -> list[dict[str, Any]]:
        """Ray's state API (``/api/v0/<resource>``), with the token."""
        params: list[tuple[str, str]] = [("limit", "1000"), ("detail", "1")]
        for key, value in filters.items():
            params += [("filter_keys", key), ("filter_predicates", "="), ("filter_values", value)]
        response = httpx.get(
            f"{self.dashboard}/api/v0/{resource}", params=params, headers=self.headers, timeout=10
        )
        response.raise_for_status()
        return list(response.json()["data"]["result"]["result"])

    def node_ids(self) -> dict[str, str]:
        """Node name (the pod) -> Ray node id, of the nodes alive now."""
        return {n["node_name"]: n["node_id"] for n in self.state("nodes", state="ALIVE")}

    def wait_alive(self, names: set[str], timeout: float) -> dict[str, str]:
        """Wait for ``names`` to be alive in the GCS; node name -> node id of the alive.

        A node whose ``ray start`` exits before it joined is started again, as the kubelet
        restarts a Ray pod's container: `ray start` gives a raylet 30 s to register, which
        two busy cores do not always give it.
        """
        deadline = time.monotonic() + timeout
        alive: dict[str, str] = {}
        while time.monotonic() < deadline:
            try:
                alive = self.node_ids()
            except httpx.HTTPError:
                alive = {}
            if names <= set(alive):
                return alive
            for name in names - set(alive):
                node = self.nodes[name]
                node.container.reload()
                if node.container.status != "exited":
                    continue
                if node.restarts >= MAX_RESTARTS:
                    logs = node.container.logs(tail=40).decode(errors="replace")
                    tries = node.restarts + 1
                    raise AssertionError(f"Ray node {name} exited {tries} times:\n{logs}")
                node.restarts += 1
                node.container.start()
            time.sleep(1)
        raise AssertionError(f"Ray nodes {sorted(names - set(alive))} not alive in {timeout}s")

    def listeners(self) -> list[tuple[str, str, str]]:
        """(address:port, node, process) of every TCP socket the cluster's processes listen
        on: the containers share the host's network namespace, so ``ss`` sees them all."""
        pids: dict[str, str] = {}
        for node in self.nodes.values():
            node.container.reload()
            if node.container.status != "running":
                continue
            for row in node.container.top(ps_args="-eo pid")["Processes"] or []:
                pids[row[0]] = node.name
        table = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True)
        found = []
        for line in table.stdout.splitlines():
            for process, pid in re.findall(r'\("([^"]*)",pid=(\d+)', line):
                if pid in pids:
                    found.append((line.split()[3], pids[pid], process))
        return found


def is_loopback(address: str) -> bool:
    host = address.rsplit(":", 1)[0].strip("[]")
    return host in ("127.0.0.1", "::1", "::ffff:127.0.0.1")


# -- MLflow on PostgreSQL ------------------------------------------------------------------


@dataclass
class MlflowServer:
    url: str
    database: str
    artifacts: Path
    log: Path


@contextmanager
def mlflow_server(work: Path) -> Iterator[MlflowServer]:
    """``mlflow server`` from the host venv on a fresh PostgreSQL database, proxying
    artifacts into ``work/artifacts``; stopped (its process group) and dropped after."""
    artifacts = work / "artifacts"
    artifacts.mkdir(parents=True)
    log = work / "mlflow-server.log"
    port = free_port()
    with postgres_database() as database:
        command = [
            str(ROOT / ".venv" / "bin" / "mlflow"),
            "server",
            "--backend-store-uri",
            f"postgresql+psycopg://postgres@127.0.0.1:5432/{database}",
            "--artifacts-destination",
            str(artifacts),
            "--serve-artifacts",
            "--host",
            LOOPBACK,
            "--port",
            str(port),
            "--workers",
            "1",
        ]
        env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
        with log.open("w") as out:
            process = subprocess.Popen(  # our own venv's mlflow
                command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        try:
            url = f"http://{LOOPBACK}:{port}"
            wait_http(f"{url}/health", 90, process=process, log=log)
            yield MlflowServer(url, database, artifacts, log)
        finally:
            os.killpg(process.pid, signal.SIGTERM)  # the group this Popen started
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
