"""Alias -> version in the MLflow model registry: the one place the operator reads MLflow.

Credentials come from the operator's own environment (MLFLOW_TRACKING_USERNAME/PASSWORD
from the chart's Secret), so the operator never needs to read users' Secrets.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from urllib.parse import urlparse

from sqlalchemy.exc import SQLAlchemyError

from medops.errors import MedopsError
from medops.registry.audit import DB_ENV, AuditError, AuditLog
from medops.registry.tags import APPROVAL_AUDIT_TAG, APPROVAL_TAG, version_uri

# the timer asks again every sync period: fail fast instead of MLflow's minutes of retries
_HTTP_DEFAULTS = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}
ALLOWED_ENV = "MEDOPS_ALLOWED_TRACKING_URIS"
# what KServe's storage initializer can download
FETCHABLE_SCHEMES = ("s3", "gs", "pvc", "https", "hf", "oci")


class RegistryError(MedopsError, RuntimeError):
    """The alias cannot be resolved; ``reason`` is a condition reason (CamelCase)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class ResolvedVersion:
    version: str
    storage_uri: str | None  # None when KServe could not fetch the artifacts directly
    # the version's ``task`` tag (set by medops' register stage); None when untagged
    task: str | None = None
    approval: str | None = None  # the version's approval tag: approved | pending | rejected
    approval_hash: str | None = None  # its audit entry's hash (the chain's anchor)


def allowed_tracking_uris() -> frozenset[str] | None:
    """The registries the platform team lets resources name (``MEDOPS_ALLOWED_TRACKING_URIS``,
    comma-separated, set by the chart); None when unset (a development operator)."""
    listed = os.environ.get(ALLOWED_ENV)
    if listed is None:
        return None
    return frozenset(uri.strip().rstrip("/") for uri in listed.split(",") if uri.strip())


def check_tracking_uri(tracking_uri: str) -> None:
    """Refuse a registry outside the allowlist before anything is sent to it: the operator
    resolves aliases with its own MLflow credentials, which must not go to a URL a resource
    author chose."""
    allowed = allowed_tracking_uris()
    if allowed is not None and tracking_uri.rstrip("/") not in allowed:
        raise RegistryError(
            "TrackingUriNotAllowed",
            "spec.mlflow.trackingUri is not one the platform team allows; nothing was sent "
            "to it. Use the chart's MLflow service, or ask for the URI to be added to "
            "operator.allowedTrackingUris",
        )


def resolve_alias(tracking_uri: str, model_name: str, alias: str) -> ResolvedVersion:
    """The version ``models:/<model_name>@<alias>`` points at now.

    Failures carry a fixed message and the error's type only: a registry's response body
    (or a URI with credentials in it) never reaches the resource's status.
    """
    check_tracking_uri(tracking_uri)
    for key, value in _HTTP_DEFAULTS.items():
        os.environ.setdefault(key, value)
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=tracking_uri)
    try:
        version = client.get_model_version_by_alias(model_name, alias)
        location = client.get_model_version_download_uri(model_name, version.version)
    except MlflowException as error:
        if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise RegistryError(
                "AliasNotFound", f"the registry has no {model_name}@{alias}"
            ) from None
        raise RegistryError("RegistryUnavailable", _unavailable(error)) from None
    except OSError as error:  # connection refused, DNS, TLS
        raise RegistryError("RegistryUnavailable", _unavailable(error)) from None
    fetchable = urlparse(location).scheme in FETCHABLE_SCHEMES
    tags = version.tags or {}
    return ResolvedVersion(
        str(version.version),
        location if fetchable else None,
        tags.get("task"),
        tags.get(APPROVAL_TAG),
        tags.get(APPROVAL_AUDIT_TAG),
    )


@functools.cache
def _audit_log(url: str) -> AuditLog:
    """One open (and migrated) log per database for the operator's lifetime."""
    return AuditLog(url, create=False)


def check_approved(model_name: str, resolved: ResolvedVersion) -> None:
    """Deploy only what medops promoted: the gate passed and someone (or ``registry.approval:
    auto``) approved, as the version's tags say. An alias moved by hand in MLflow, to a
    version nobody approved, is refused. With ``MEDOPS_AUDIT_DB`` (the audit database,
    written under other credentials than MLflow's), the approval must also be an intact
    entry of the hash-chained log, so a forged tag is refused too."""
    uri = version_uri(model_name, resolved.version)
    if resolved.approval != "approved":
        raise RegistryError(
            "NotApproved",
            f"{uri} holds the alias but its approval is {resolved.approval or 'not recorded'}: "
            f"only a version promoted by medops is deployed; run `medops approve {uri} "
            "--reason ...` (or move the alias back)",
        )
    url = os.environ.get(DB_ENV)
    if not url:
        return
    try:
        log = _audit_log(url)
        checked = log.verify([resolved.approval_hash] if resolved.approval_hash else [])
        approved = [e for e in log.entries(uri) if e.action == "approve"]
    except (AuditError, SQLAlchemyError) as error:
        raise RegistryError(
            "AuditLogUnavailable", f"the audit log could not be read ({type(error).__name__})"
        ) from None
    if not checked.ok or not any(e.hash == resolved.approval_hash for e in approved):
        raise RegistryError(
            "ApprovalNotInAuditLog",
            f"{uri} is tagged approved, but no intact approval of it is in the audit log "
            f"({checked.problem or 'no approve entry with the tagged hash'}): not deployed",
        )


def _unavailable(error: Exception) -> str:
    status = getattr(error, "get_http_status_code", lambda: None)()
    code = f", HTTP {status}" if status and status != 500 else ""
    return f"the registry could not be reached or refused ({type(error).__name__}{code})"
