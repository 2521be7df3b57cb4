"""Registered versions on disk: resolve ``models:/name@alias`` or ``/version`` and list the
files a version holds, without loading any of its code.

Shared by the server (which loads weights from them) and by evaluation against the current
champion; plain MLflow client calls, no global MLflow state.
"""

from __future__ import annotations

import re
from pathlib import Path

import mlflow
import yaml
from mlflow.exceptions import MlflowException

from medops.errors import MissingInputError

_REGISTERED = re.compile(r"models:/([^/@]+)(?:@([^/]+)|/(\d+))")

# how mlflow 3.17 says a name, alias or version is not registered (a missing alias is
# INVALID_PARAMETER_VALUE, a missing version RESOURCE_DOES_NOT_EXIST)
_NOT_FOUND = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"})


class MissingModelError(MissingInputError):
    """The registered model, alias or version a ``models:/`` URI names does not exist."""


def fetch_model(model_uri: str, tracking_uri: str | None) -> str:
    """Local path of ``model_uri``, resolved against ``tracking_uri`` (no global MLflow state).

    mlflow 3.17 resolves ``models:/`` names through the process-wide registry URI even when
    ``download_artifacts`` is given one, so ``models:/<name>@<alias>`` and
    ``models:/<name>/<version>`` are resolved here with an explicit client first.
    """
    match = _REGISTERED.fullmatch(model_uri)
    if tracking_uri and match:
        client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        name, alias, version = match.groups()
        model_uri = _download_uri(client, name, alias, version)
    return mlflow.artifacts.download_artifacts(
        artifact_uri=model_uri, tracking_uri=tracking_uri, registry_uri=tracking_uri
    )


def _download_uri(
    client: mlflow.MlflowClient, name: str, alias: str | None, version: str | None
) -> str:
    """Where a registered version's files are; a missing alias or version is the user's to
    fix (after a demo whose gate refused to promote, the alias does not exist yet)."""
    try:
        if alias:
            version = client.get_model_version_by_alias(name, alias).version
        return client.get_model_version_download_uri(name, str(version))
    except MlflowException as error:
        if error.error_code not in _NOT_FOUND:
            raise
        raise MissingModelError(_missing(client, name, alias, version)) from None


def _missing(client: mlflow.MlflowClient, name: str, alias: str | None, version: str | None) -> str:
    wanted = f"alias {alias!r}" if alias else f"version {version}"
    versions = _versions(client, name)
    if not versions:
        return (
            f"registered model {name!r} has no {wanted} and no versions at all: run the "
            "pipeline to register one (medops run / medops demo)"
        )
    why = " (an alias is set only when the evaluation gate promotes a version)" if alias else ""
    return (
        f"registered model {name!r} has no {wanted}{why}; its versions are "
        f"{', '.join(versions)}. To serve one of them: --model-uri models:/{name}/{versions[-1]}"
    )


def _versions(client: mlflow.MlflowClient, name: str) -> list[str]:
    """The registered versions of ``name``, oldest first (none when the model is unknown)."""
    quoted = name.replace("\\", "\\\\").replace("'", "\\'")
    try:
        found = client.search_model_versions(f"name='{quoted}'")
    except MlflowException:
        return []
    return sorted((str(v.version) for v in found), key=int)


def registered_artifacts(model_dir: Path) -> dict[str, Path]:
    """Artifact name -> local path, as the pyfunc flavor of the MLmodel file lists them."""
    meta = yaml.safe_load((model_dir / "MLmodel").read_text(encoding="utf-8"))
    listed = meta["flavors"]["python_function"].get("artifacts", {})
    return {name: model_dir / entry["path"] for name, entry in listed.items()}
