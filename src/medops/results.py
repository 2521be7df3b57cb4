"""Typed results that stages hand each other, read from the stage directories' manifests.

A later stage (or launcher) asks ``Trained.read(dir).mlflow_run_id`` instead of digging
through ``manifest["extra"]``: what a stage promises its successors is written down here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medops.errors import DataError
from medops.manifest import read_manifest


def _extra(manifest: dict[str, Any], key: str, stage_dir: Path) -> Any:
    if key not in manifest.get("extra", {}):
        raise DataError(f"{stage_dir}: its manifest has no {key!r}; rerun the stage")
    return manifest["extra"][key]


# prepare's non-PHI vocabulary (drug and class names de-identification kept): registered
# with the model so serving de-identifies requests as prepare did the training data
VOCABULARY = "deid_vocabulary.json"


@dataclass(frozen=True)
class Ran:
    """What every stage records: its row counts and how long it took."""

    directory: Path
    counts: dict[str, int]
    wall_seconds: float

    @classmethod
    def read(cls, directory: Path) -> Ran:
        manifest = read_manifest(directory)
        return cls(Path(directory), manifest["counts"], manifest["wall_seconds"])


@dataclass(frozen=True)
class Prepared:
    directory: Path
    dataset_hash: str
    counts: dict[str, int]

    @classmethod
    def read(cls, directory: Path) -> Prepared:
        manifest = read_manifest(directory)
        return cls(Path(directory), _extra(manifest, "dataset_hash", directory), manifest["counts"])


@dataclass(frozen=True)
class Trained:
    directory: Path
    mlflow_run_id: str
    tracking_uri: str | None  # where the run lives; launchers may set their own
    extra: dict[str, Any]  # task-specific: labels, fields, method, ...

    @property
    def model_dir(self) -> Path:
        return self.directory / "model"

    @classmethod
    def read(cls, directory: Path) -> Trained:
        manifest = read_manifest(directory)
        return cls(
            Path(directory),
            _extra(manifest, "mlflow_run_id", directory),
            manifest["extra"].get("tracking_uri"),
            manifest["extra"],
        )


@dataclass(frozen=True)
class Evaluated:
    directory: Path
    metrics: dict[str, float]
    counts: dict[str, int]

    @classmethod
    def read(cls, directory: Path) -> Evaluated:
        manifest = read_manifest(directory)
        return cls(Path(directory), manifest["metrics"], manifest["counts"])


@dataclass(frozen=True)
class Registered:
    directory: Path
    model_uri: str
    version: str
    gate_passed: bool
    gate_reason: str
    mlflow_run_id: str
    tracking_uri: str | None

    @classmethod
    def read(cls, directory: Path) -> Registered:
        manifest = read_manifest(directory)
        return cls(
            Path(directory),
            model_uri=_extra(manifest, "model_uri", directory),
            version=_extra(manifest, "version", directory),
            gate_passed=bool(_extra(manifest, "gate_passed", directory)),
            gate_reason=_extra(manifest, "gate_reason", directory),
            mlflow_run_id=_extra(manifest, "mlflow_run_id", directory),
            tracking_uri=manifest["extra"].get("tracking_uri"),
        )
