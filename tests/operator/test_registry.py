"""The operator deploys only a version medops promoted: approved by its tags and, with the
audit database, by an intact entry of the hash-chained log."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from medops.operator.registry import RegistryError, check_approved, resolve_alias
from medops.registry.audit import DB_ENV, AuditLog
from medops.registry.tags import APPROVAL_AUDIT_TAG, APPROVAL_TAG, version_uri

NAME = "approval-check"


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Any]:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from mlflow import MlflowClient

    monkeypatch.delenv(DB_ENV, raising=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    client.create_registered_model(NAME)
    for version in ("1", "2", "3"):
        client.create_model_version(NAME, f"s3://models/{version}")
    client.set_model_version_tag(NAME, "2", APPROVAL_TAG, "approved")
    client.set_model_version_tag(NAME, "3", APPROVAL_TAG, "rejected")
    return uri, client


def _check(uri: str, client: Any, version: str) -> None:
    client.set_registered_model_alias(NAME, "champion", version)
    check_approved(NAME, resolve_alias(uri, NAME, "champion"))


@pytest.mark.parametrize(("version", "said"), [("1", "not recorded"), ("3", "rejected")])
def test_an_alias_moved_to_an_unapproved_version_is_not_deployed(registry, version, said):
    with pytest.raises(RegistryError, match=f"approval is {said}") as refused:
        _check(*registry, version)
    assert refused.value.reason == "NotApproved"
    assert f"medops approve {version_uri(NAME, version)}" in str(refused.value)


def test_an_approved_version_is_deployed(registry):
    _check(*registry, "2")


def test_with_the_audit_log_a_forged_approval_tag_is_refused(registry, tmp_path, monkeypatch):
    uri, client = registry
    log_url = f"sqlite:///{tmp_path / 'audit.db'}"
    entry = AuditLog(log_url).append(
        "dr.jones", "approve", version_uri(NAME, "2"), "reviewed the card", {"version": "2"}
    )
    monkeypatch.setenv(DB_ENV, log_url)
    client.set_model_version_tag(NAME, "2", APPROVAL_AUDIT_TAG, entry.hash)
    _check(uri, client, "2")  # the tag's hash is an approve entry of this version: deployed
    # a registry writer tags version 1 approved, with a hash the log does not hold
    client.set_model_version_tag(NAME, "1", APPROVAL_TAG, "approved")
    client.set_model_version_tag(NAME, "1", APPROVAL_AUDIT_TAG, "f" * 64)
    with pytest.raises(RegistryError) as forged:
        _check(uri, client, "1")
    assert forged.value.reason == "ApprovalNotInAuditLog"
    # ...or reuses version 2's real hash: an approval of another version does not count
    client.set_model_version_tag(NAME, "1", APPROVAL_AUDIT_TAG, entry.hash)
    with pytest.raises(RegistryError, match="no approve entry with the tagged hash"):
        _check(uri, client, "1")


def test_an_unreadable_audit_log_stops_the_rollout(registry, tmp_path, monkeypatch):
    monkeypatch.setenv(DB_ENV, f"sqlite:///{tmp_path / 'missing' / 'audit.db'}")
    with pytest.raises(RegistryError) as refused:
        _check(*registry, "2")
    assert refused.value.reason == "AuditLogUnavailable"
