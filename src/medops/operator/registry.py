"""Alias -> version in the MLflow model registry: the one place the operator reads MLflow.

Credentials come from the operator's own environment (MLFLOW_TRACKING_USERNAME/PASSWORD
from the chart's Secret), so the operator never needs to read users' Secrets.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlparse

from medops.errors import MedopsError

# the timer asks again every sync period: fail fast instead of MLflow's minutes of retries
_HTTP_DEFAULTS = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}
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


def resolve_alias(tracking_uri: str, model_name: str, alias: str) -> ResolvedVersion:
    """The version ``models:/<model_name>@<alias>`` points at now."""
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
                "AliasNotFound", f"MLflow has no {model_name}@{alias}: {error.message}"
            ) from None
        raise RegistryError("RegistryUnavailable", f"MLflow at {tracking_uri}: {error}") from None
    except OSError as error:  # connection refused, DNS, TLS
        raise RegistryError("RegistryUnavailable", f"MLflow at {tracking_uri}: {error}") from None
    fetchable = urlparse(location).scheme in FETCHABLE_SCHEMES
    task = (version.tags or {}).get("task")
    return ResolvedVersion(str(version.version), location if fetchable else None, task)
