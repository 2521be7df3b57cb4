"""A registered version's files are data that registration vouched for (issue 22, finding 6).

Registration records the sha256 of every file of every artifact it logs, computed from the
files this process wrote, before the upload, and stores them as a model-version tag
(``DIGESTS_TAG``). Before a predictor builds a model from a version it fetches the version,
then refuses:

- any pickled file (``*.pkl``, ``*.pt``, ``*.bin`` ...) or Python file anywhere in it,
  except the one code file MLflow itself writes for the "model from code" pyfunc, which
  medops' predictors never import (they build the model from the artifacts' data);
- any artifact file whose digest differs from the recorded one, or that was not recorded,
  or that is missing.

Where the expected digests come from: the registry's metadata (the version tag), not the
artifact store that holds the files, so a writer of the artifact store alone (bucket access
without registry access, a partial or mistaken upload) cannot make its own files pass. A
registry writer can rewrite the tag too; what keeps that writer from running code in a
predictor is that serving never unpickles, imports or executes anything from a version,
whatever its digests say.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path

import mlflow
from mlflow.store.artifact.utils.models import get_model_name_and_version

from medops.errors import MedopsError
from medops.model.registered import fetch_model, registered_artifacts

DIGESTS_TAG = "medops.artifact_sha256"  # {artifact name: {relative path: sha256}}, JSON

# formats whose loaders unpickle (torch.load, joblib, pickle): never read by serving
PICKLED = frozenset({".pkl", ".pickle", ".joblib", ".dill", ".pt", ".pth", ".bin", ".ckpt"})
CODE = frozenset({".py", ".pyc", ".pyw"})

_FIX = (
    "register the model again from its run (medops run), or serve another version with "
    "--model-uri models:/<name>/<version>"
)


class UnsafeArtifactError(MedopsError):
    """A registered version holds a file serving must not load: pickled, code, or changed
    since registration. The message names the file and the fix."""


def _sha256(file: Path) -> str:
    with file.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def tree_digests(path: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``path`` (a file: its own name), the form
    a logged artifact keeps: MLflow copies a file artifact under its name, a directory whole."""
    if path.is_file():
        return {path.name: _sha256(path)}
    files = sorted(p for p in path.rglob("*") if p.is_file())
    return {file.relative_to(path).as_posix(): _sha256(file) for file in files}


def artifact_digests(artifacts: Mapping[str, str | Path]) -> str:
    """The ``DIGESTS_TAG`` value for the artifacts a version is logged with."""
    recorded = {name: tree_digests(Path(path)) for name, path in artifacts.items()}
    return json.dumps(recorded, sort_keys=True, separators=(",", ":"))


def refuse_unsafe_files(model_dir: Path, code_file: str) -> None:
    """Refuse a pickled or code file anywhere in the version (``code_file``, at its root,
    is what MLflow writes for the task's pyfunc; it is allowed because it is never run)."""
    for directory, dirs, names in os.walk(model_dir):
        for name in sorted(dirs + names):
            path = Path(directory, name)
            relative = path.relative_to(model_dir).as_posix()
            suffix = path.suffix.lower()
            if path.is_symlink() or not (path.is_file() or path.is_dir()):
                why = "is a link or a device, not a plain file"
            elif path.is_dir():
                continue
            elif suffix in PICKLED:
                why = f"is a pickled file ({suffix}); serving never unpickles"
            elif suffix in CODE and relative != code_file:
                why = "is Python code; serving never imports code from the registry"
            else:
                continue
            raise UnsafeArtifactError(
                f"registered model file {relative!r} {why}: weights load from safetensors "
                f"and settings from JSON only. Remove it from the version or {_FIX}"
            )


def _expected(recorded: str) -> dict[str, dict[str, str]]:
    """The tag's value, refused unless it has the shape ``artifact_digests`` writes."""
    try:
        expected = json.loads(recorded)
    except ValueError:
        expected = None
    if not isinstance(expected, dict) or not all(
        isinstance(files, dict) and all(isinstance(d, str) for d in files.values())
        for files in expected.values()
    ):
        raise UnsafeArtifactError(f"tag {DIGESTS_TAG} is not what registration writes: {_FIX}")
    return expected


def check_digests(model_dir: Path, artifacts: Mapping[str, Path], recorded: str) -> None:
    """Refuse an artifact file that differs from, or is absent from, what was recorded."""
    expected = _expected(recorded)
    missing = sorted(set(expected) - set(artifacts))
    if missing:
        raise UnsafeArtifactError(
            f"artifact {missing[0]!r} was recorded at registration and is missing: {_FIX}"
        )
    for name, path in sorted(artifacts.items()):
        if not path.resolve().is_relative_to(model_dir.resolve()):
            raise UnsafeArtifactError(f"artifact {name!r} points outside the version: {_FIX}")
        wanted = expected.get(name, {})
        found = tree_digests(path)
        for file in sorted(set(wanted) | set(found)):
            shown = (path.parent / file if path.is_file() else path / file).relative_to(model_dir)
            if file not in wanted:
                why = "was not recorded at registration"
            elif file not in found:
                why = "was recorded at registration and is missing"
            elif found[file] != wanted[file]:
                why = "has a sha256 that differs from the digest recorded at registration"
            else:
                continue
            raise UnsafeArtifactError(
                f"registered model file {shown.as_posix()!r} {why}: the version changed "
                f"after it was registered. Do not serve it; {_FIX}"
            )


def recorded_digests(model_uri: str, tracking_uri: str | None) -> str:
    """The ``DIGESTS_TAG`` of the registered version ``model_uri`` names."""
    client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    resolved = ()
    if model_uri.startswith("models:/"):
        resolved = get_model_name_and_version(client, model_uri)
    if len(resolved) != 2:
        raise UnsafeArtifactError(
            f"{model_uri} is not a registered version, so no digests were recorded for it: "
            "serve models:/<name>/<version> or models:/<name>@<alias>"
        )
    name, version = resolved
    tags = client.get_model_version(name, version).tags
    if DIGESTS_TAG not in tags:
        raise UnsafeArtifactError(
            f"version {version} of {name!r} has no {DIGESTS_TAG} tag: it was not registered by "
            f"medops' register stage, so its files cannot be checked; {_FIX}"
        )
    return tags[DIGESTS_TAG]


def fetch_checked(model_uri: str, tracking_uri: str | None, code_file: str) -> dict[str, Path]:
    """Download ``model_uri`` and return its artifacts (name -> local path) once every file
    has passed both checks; nothing from the version is loaded before that."""
    model_dir = Path(fetch_model(model_uri, tracking_uri))
    recorded = recorded_digests(model_uri, tracking_uri)
    refuse_unsafe_files(model_dir, code_file)
    artifacts = registered_artifacts(model_dir)
    check_digests(model_dir, artifacts, recorded)
    return artifacts
