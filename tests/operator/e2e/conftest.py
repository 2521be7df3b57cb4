"""A real control plane for the operator's end-to-end test: etcd + kube-apiserver 1.20.

The API server is built once from Debian's ``kubernetes`` source package by
``scripts/kube-apiserver.sh`` (``make apiserver``; ``make test`` runs it first) and cached
outside the repository; etcd is Debian's ``etcd-server``. Everything listens on 127.0.0.1
only, with a throw-away CA and serving certificate, static bearer tokens (an admin in
``system:masters`` and the chart's operator ServiceAccount identity), RBAC authorization
and data in a temporary directory. Every process started here is stopped in ``finally``.

No kube-controller-manager runs: garbage collection and ServiceAccount token controllers
are absent, so the test checks owner references, not the cascade itself.

If the API server binary is not there the test FAILS (never skips): CI must not pass
silently without it. ``MEDOPS_KUBE_APISERVER`` / ``MEDOPS_ETCD`` override the binaries.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.support.network import free_port

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "scripts" / "kube-apiserver.sh"
RELEASE_NS = "medops-system"  # where the chart (and its operator ServiceAccount) lives
OPERATOR_SA = "medops-operator"  # helm release "medops": <fullname>-operator
OPERATOR_USER = f"system:serviceaccount:{RELEASE_NS}:{OPERATOR_SA}"
START_TIMEOUT = 60.0  # s, for etcd and for the API server to become ready


def wait_for(
    check: Callable[[], Any], what: str, timeout: float, on_fail: Callable[[], str] = str
) -> Any:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after timeout."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (requests.RequestException, KeyError, TypeError, IndexError) as error:
            last = error
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.25)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r}){on_fail()}")


# --------------------------------------------------------------------------- binaries


def _binaries() -> tuple[str, str]:
    apiserver = os.environ.get("MEDOPS_KUBE_APISERVER")
    if not apiserver:
        found = subprocess.run(
            ["bash", str(SCRIPT), "--print-path"], capture_output=True, text=True, timeout=30
        )
        apiserver = found.stdout.strip().splitlines()[-1] if found.returncode == 0 else ""
    if not apiserver or not os.access(apiserver, os.X_OK):
        pytest.fail(
            "no kube-apiserver binary: build it once with `make apiserver` "
            "(scripts/kube-apiserver.sh: Debian's kubernetes source package + golang-1.19, "
            "needs apt deb-src access) or set MEDOPS_KUBE_APISERVER"
        )
    etcd = os.environ.get("MEDOPS_ETCD") or shutil.which("etcd") or ""
    if not etcd:
        pytest.fail("no etcd binary: `make apiserver` installs Debian's etcd-server")
    return apiserver, etcd


# --------------------------------------------------------------------------- certificates


def _write_pki(directory: Path) -> dict[str, Path]:
    """A CA, a serving certificate for 127.0.0.1 signed by it, a ServiceAccount key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def pem_key(key: Any) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    now = datetime.datetime.now(datetime.UTC)
    valid = {"not_valid_before": now - datetime.timedelta(minutes=5)}
    valid["not_valid_after"] = now + datetime.timedelta(days=1)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "medops-e2e-ca")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid["not_valid_before"])
        .not_valid_after(valid["not_valid_after"])
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid["not_valid_before"])
        .not_valid_after(valid["not_valid_after"])
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    files = {
        "ca": directory / "ca.crt",
        "cert": directory / "apiserver.crt",
        "key": directory / "apiserver.key",
        "sa_key": directory / "sa.key",
        "sa_pub": directory / "sa.pub",
    }
    files["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files["cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files["key"].write_bytes(pem_key(key))
    files["sa_key"].write_bytes(pem_key(sa_key))
    files["sa_pub"].write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    for path in files.values():
        path.chmod(0o600)
    return files


# --------------------------------------------------------------------------- processes


@contextlib.contextmanager
def process(args: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[Any]:
    """Run ``args`` with output to ``log``; always stopped (TERM, then KILL) on exit."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)


def tail(log: Path, lines: int = 40) -> str:
    try:
        text = log.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return f"\n--- last lines of {log.name} ---\n" + "\n".join(text)


# --------------------------------------------------------------------------- REST client

# apiVersion/kind -> (plural, namespaced) for what the test writes
KINDS: dict[tuple[str, str], tuple[str, bool]] = {
    ("v1", "Namespace"): ("namespaces", False),
    ("v1", "ServiceAccount"): ("serviceaccounts", True),
    ("v1", "Secret"): ("secrets", True),
    ("v1", "ConfigMap"): ("configmaps", True),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): ("clusterroles", False),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): ("clusterrolebindings", False),
    ("rbac.authorization.k8s.io/v1", "Role"): ("roles", True),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): ("rolebindings", True),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"): (
        "customresourcedefinitions",
        False,
    ),
    ("medops.dev/v1alpha1", "FineTune"): ("finetunes", True),
    ("medops.dev/v1alpha1", "ModelDeployment"): ("modeldeployments", True),
    ("ray.io/v1", "RayJob"): ("rayjobs", True),
    ("serving.kserve.io/v1beta1", "InferenceService"): ("inferenceservices", True),
}


def path_of(api_version: str, kind: str, namespace: str | None = None, name: str = "") -> str:
    plural, namespaced = KINDS[(api_version, kind)]
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    if namespaced:
        prefix += f"/namespaces/{namespace}"
    return f"{prefix}/{plural}" + (f"/{name}" if name else "")


class Client:
    """A minimal REST client for one identity (bearer token), verifying the server's CA."""

    def __init__(self, server: str, token: str, ca: Path) -> None:
        self.server, self.ca, self.session = server, str(ca), requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"
        # no REQUESTS_CA_BUNDLE (it would override the CA) and no proxies from the env
        self.session.trust_env = False

    def call(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json"
    ) -> requests.Response:
        return self.session.request(
            method,
            self.server + path,
            json=body,
            headers={"Content-Type": content_type} if body is not None else {},
            verify=self.ca,
            timeout=30,
        )

    def get(self, path: str) -> dict[str, Any] | None:
        response = self.call("GET", path)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return response.json()

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        path = path_of(obj["apiVersion"], obj["kind"], meta.get("namespace"))
        response = self.call("POST", path, obj)
        if response.status_code >= 300:
            what = f"create {obj['kind']} {meta['name']}"
            raise AssertionError(f"{what}: {response.status_code} {response.text[:2000]}")
        return response.json()

    def merge_patch(self, path: str, patch: dict[str, Any]) -> requests.Response:
        return self.call("PATCH", path, patch, "application/merge-patch+json")


# --------------------------------------------------------------------------- the cluster


class ControlPlane:
    def __init__(self, server: str, tokens: dict[str, str], pki: dict[str, Path], logs: Path):
        self.server, self.tokens, self.pki, self.logs = server, tokens, pki, logs
        self.admin = Client(server, tokens["admin"], pki["ca"])
        self.operator = Client(server, tokens["operator"], pki["ca"])

    def kubeconfig(self, path: Path, who: str) -> Path:
        """A kubeconfig for ``who`` (admin | operator), as kopf and the client read it."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "e2e",
                    "cluster": {
                        "server": self.server,
                        "certificate-authority": str(self.pki["ca"]),
                    },
                }
            ],
            "users": [{"name": who, "user": {"token": self.tokens[who]}}],
            "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": who}}],
            "current-context": "e2e",
        }
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return path


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    apiserver, etcd = _binaries()
    base = tmp_path_factory.mktemp("kube")
    pki = _write_pki(base)
    tokens = {"admin": os.urandom(16).hex(), "operator": os.urandom(16).hex()}
    groups = f"system:serviceaccounts,system:serviceaccounts:{RELEASE_NS},system:authenticated"
    (base / "tokens.csv").write_text(
        f'{tokens["admin"]},e2e-admin,e2e-admin,"system:masters"\n'
        f'{tokens["operator"]},{OPERATOR_USER},e2e-operator-uid,"{groups}"\n'
    )
    (base / "tokens.csv").chmod(0o600)
    client_port, peer_port, secure_port = free_port(), free_port(), free_port()
    etcd_url = f"http://127.0.0.1:{client_port}"
    etcd_args = [
        etcd,
        "--name=e2e",
        f"--data-dir={base / 'etcd'}",
        f"--listen-client-urls={etcd_url}",
        f"--advertise-client-urls={etcd_url}",
        f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
        f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
        f"--initial-cluster=e2e=http://127.0.0.1:{peer_port}",
        "--max-request-bytes=4194304",  # the upstream CRDs are large objects
        "--log-level=warn",
    ]
    server = f"https://127.0.0.1:{secure_port}"
    apiserver_args = [
        apiserver,
        f"--etcd-servers={etcd_url}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={secure_port}",
        "--insecure-port=0",
        f"--cert-dir={base / 'certs'}",
        f"--tls-cert-file={pki['cert']}",
        f"--tls-private-key-file={pki['key']}",
        f"--token-auth-file={base / 'tokens.csv'}",
        "--anonymous-auth=false",
        "--authorization-mode=RBAC",
        "--service-account-issuer=https://kubernetes.default.svc",
        f"--service-account-key-file={pki['sa_pub']}",
        f"--service-account-signing-key-file={pki['sa_key']}",
        "--service-cluster-ip-range=10.96.0.0/24",
        "--endpoint-reconciler-type=none",  # no Endpoints for a loopback advertise address
        "--profiling=false",
        "--v=1",
    ]
    with (
        process(etcd_args, base / "etcd.log") as etcd_proc,
        process(apiserver_args, base / "kube-apiserver.log") as api_proc,
    ):

        def etcd_up() -> bool:
            if etcd_proc.poll() is not None:
                pytest.fail(f"etcd exited ({etcd_proc.returncode}){tail(base / 'etcd.log')}")
            return requests.get(f"{etcd_url}/health", timeout=2).json().get("health") == "true"

        wait_for(etcd_up, "etcd", START_TIMEOUT, lambda: tail(base / "etcd.log"))
        cluster = ControlPlane(server, tokens, pki, base)

        def api_ready() -> bool:
            if api_proc.poll() is not None:
                pytest.fail(
                    f"kube-apiserver exited ({api_proc.returncode})"
                    f"{tail(base / 'kube-apiserver.log')}"
                )
            return cluster.admin.call("GET", "/readyz").status_code == 200

        wait_for(
            api_ready,
            "kube-apiserver /readyz",
            START_TIMEOUT,
            lambda: tail(base / "kube-apiserver.log"),
        )
        yield cluster
