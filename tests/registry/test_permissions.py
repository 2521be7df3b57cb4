"""The registry's identities on a real ``mlflow server --app-name basic-auth``, configured
with the chart's own basic_auth.ini, on fresh PostgreSQL databases on the loopback."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import httpx
import pytest
import yaml
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from medops.operator.registry import RegistryError, check_approved, resolve_alias
from medops.registry.approval import approve
from medops.registry.audit import DB_ENV, AuditLog
from medops.registry.permissions import APPROVER, OPERATOR, PIPELINE, Identity, bootstrap
from tests.paths import ROOT
from tests.support.helm import API_SERVER, CHART, run_helm
from tests.support.network import LOOPBACK, free_port, wait_http
from tests.support.postgres import postgres_database

MODEL = "condition-classifier"
ADMIN = Identity("admin", "admin", secrets.token_urlsafe(16))


@dataclass
class Registry:
    url: str
    users: dict[str, Identity]
    run_id: str


def _chart_auth_ini(helm_path: str, database_url: str) -> str:
    """basic_auth.ini as the chart renders it, pointed at this test's auth database."""
    url = ["--set", f"mlflow.auth.database.url={database_url}"]
    done = run_helm(helm_path, "template", "medops", str(CHART), *API_SERVER, *url)
    assert done.returncode == 0, done.stderr
    docs = [d for d in yaml.safe_load_all(done.stdout) if d]
    config = next(
        d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("auth")
    )
    return config["data"]["basic_auth.ini"]


def _as(monkeypatch: pytest.MonkeyPatch, who: Identity) -> MlflowClient:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", who.username)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", who.password)
    return MlflowClient(tracking_uri=os.environ["MLFLOW_TRACKING_URI"])


def _denied(call, *args, **kwargs) -> str:
    with pytest.raises(MlflowException) as caught:
        call(*args, **kwargs)
    assert caught.value.error_code == "PERMISSION_DENIED", caught.value
    return str(caught.value)


@pytest.fixture(scope="module")
def registry(helm: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    work = tmp_path_factory.mktemp("mlflow-auth")
    users = {
        role: Identity(role, f"medops-{role}", secrets.token_urlsafe(16))
        for role in (PIPELINE, APPROVER, OPERATOR)
    }
    port = free_port()
    url = f"http://{LOOPBACK}:{port}"
    with ExitStack() as stack:
        backend = stack.enter_context(postgres_database("medops_registry"))
        auth_db = stack.enter_context(postgres_database("medops_registry_auth"))
        ini = work / "basic_auth.ini"
        ini.write_text(
            _chart_auth_ini(helm, f"postgresql+psycopg://postgres@127.0.0.1:5432/{auth_db}")
        )
        env = {
            **os.environ,
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "MLFLOW_AUTH_CONFIG_PATH": str(ini),
            "MLFLOW_AUTH_ADMIN_USERNAME": ADMIN.username,
            "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN.password,
            "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16),
        }
        log = work / "mlflow.log"
        command = [
            str(ROOT / ".venv" / "bin" / "mlflow"), "server", "--app-name", "basic-auth",
            "--backend-store-uri", f"postgresql+psycopg://postgres@127.0.0.1:5432/{backend}",
            "--serve-artifacts", "--artifacts-destination", str(work / "artifacts"),
            "--host", LOOPBACK, "--port", str(port), "--workers", "1",
        ]  # fmt: skip
        with log.open("w") as out:
            process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        stack.callback(process.wait, 20)
        stack.callback(os.killpg, process.pid, signal.SIGTERM)  # the group this Popen started
        wait_http(f"{url}/health", 90, process=process, log=log)
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("MLFLOW_TRACKING_URI", url)
            _as(patch, ADMIN)
            bootstrap(url, users.values(), [MODEL])
            bootstrap(url, users.values(), [MODEL])  # idempotent: an upgrade runs it again
            pipeline = _as(patch, users[PIPELINE])
            run_id = pipeline.create_run(pipeline.create_experiment("registry-auth")).info.run_id
        yield Registry(url, users, run_id)


@pytest.fixture
def client_for(registry: Registry, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry.url)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    return lambda role: _as(monkeypatch, registry.users[role])


def _new_version(registry: Registry, pipeline: MlflowClient) -> str:
    source = f"{pipeline.get_run(registry.run_id).info.artifact_uri}/model"
    version = pipeline.create_model_version(
        MODEL, source, run_id=registry.run_id, await_creation_for=0
    ).version
    pipeline.set_model_version_tag(MODEL, version, "gate", "passed")
    pipeline.set_model_version_tag(MODEL, version, "approval", "pending")
    return str(version)


def test_unauthenticated_requests_get_401(registry: Registry) -> None:
    response = httpx.get(
        f"{registry.url}/api/2.0/mlflow/registered-models/get", params={"name": MODEL}
    )
    assert response.status_code == 401
    wrong = httpx.get(
        f"{registry.url}/api/2.0/mlflow/registered-models/get",
        params={"name": MODEL},
        auth=(registry.users[PIPELINE].username, "not-the-password"),
    )
    assert wrong.status_code == 401


def test_pipeline_registers_but_cannot_approve_or_move_the_alias(registry, client_for) -> None:
    pipeline = client_for(PIPELINE)
    version = _new_version(registry, pipeline)
    assert pipeline.get_model_version(MODEL, version).tags["approval"] == "pending"
    message = _denied(pipeline.set_registered_model_alias, MODEL, "champion", version)
    assert "MANAGE" in message and "medops-pipeline" in message
    _denied(pipeline.set_model_version_tag, MODEL, version, "approval", "approved")
    _denied(pipeline.set_model_version_tag, MODEL, version, "approval_audit_hash", "f" * 64)
    _denied(pipeline.delete_registered_model_alias, MODEL, "champion")
    _denied(pipeline.rename_registered_model, MODEL, "renamed")
    source = f"{pipeline.get_run(registry.run_id).info.artifact_uri}/model"
    _denied(
        pipeline.create_model_version,
        MODEL,
        source,
        run_id=registry.run_id,
        tags={"approval": "approved"},
    )
    # a new registered model would be its own (MANAGE); an existing one answers as
    # mlflow.register_model expects
    _denied(pipeline.create_registered_model, "pipeline-owned")
    with pytest.raises(MlflowException) as exists:
        pipeline.create_registered_model(MODEL)
    assert exists.value.error_code == "RESOURCE_ALREADY_EXISTS"


def test_operator_reads_but_cannot_write(registry, client_for) -> None:
    version = _new_version(registry, client_for(PIPELINE))
    operator = client_for(OPERATOR)
    assert operator.get_model_version(MODEL, version).tags["gate"] == "passed"
    assert operator.get_run(registry.run_id).info.run_id == registry.run_id
    _denied(operator.set_model_version_tag, MODEL, version, "gate", "refused")
    _denied(operator.set_registered_model_alias, MODEL, "champion", version)
    source = f"{operator.get_run(registry.run_id).info.artifact_uri}/model"
    _denied(operator.create_model_version, MODEL, source, run_id=registry.run_id)


def test_only_an_audited_approval_is_deployed(registry, client_for, tmp_path, monkeypatch) -> None:
    """The approver moves the alias with `medops approve`; the operator, with its read-only
    identity, deploys that, and refuses a forged approval that has no audit entry."""
    audit_url = f"sqlite:///{tmp_path / 'audit.db'}"
    log = AuditLog(audit_url)
    approved = _new_version(registry, client_for(PIPELINE))
    approve(
        client_for(APPROVER), log, f"models:/{MODEL}/{approved}", "reviewed", "dr.lee", "champion"
    )
    monkeypatch.setenv(DB_ENV, audit_url)
    client_for(OPERATOR)
    resolved = resolve_alias(registry.url, MODEL, "champion")
    assert resolved.version == approved
    check_approved(MODEL, resolved)

    forged = _new_version(registry, client_for(PIPELINE))
    approver = client_for(APPROVER)  # the tags as a forger with approver rights would write
    approver.set_model_version_tag(MODEL, forged, "approval", "approved")
    approver.set_model_version_tag(MODEL, forged, "approval_audit_hash", "f" * 64)
    approver.set_registered_model_alias(MODEL, "champion", forged)
    client_for(OPERATOR)
    resolved = resolve_alias(registry.url, MODEL, "champion")
    assert resolved.version == forged and resolved.approval == "approved"
    with pytest.raises(RegistryError) as refused:
        check_approved(MODEL, resolved)
    assert refused.value.reason != "NotApproved"
