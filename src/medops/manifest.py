"""Stage manifests: what a stage read, wrote, counted and measured.

Every stage directory holds ``manifest.json``; lineage from an endpoint back to the raw
rows is a walk over these files and the MLflow tags that point at them.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medops.errors import DataError, MissingInputError

MANIFEST = "manifest.json"
_VERSIONED = ("medops", "torch", "transformers", "peft", "ray", "mlflow", "kfp", "kserve")


def sha256_path(path: Path) -> str:
    """Content hash of a file, or of a directory's files in sorted relative-path order."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode())
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def package_versions() -> dict[str, str]:
    versions = {}
    for name in _VERSIONED:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


@dataclass
class Manifest:
    stage: str
    recipe_hash: str
    inputs: dict[str, dict[str, str]] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=package_versions)
    wall_seconds: float = 0.0

    def add_input(self, name: str, path: Path) -> None:
        self.inputs[name] = {"path": str(path), "sha256": sha256_path(path)}

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "recipe_hash": self.recipe_hash,
            "inputs": self.inputs,
            "outputs": self.outputs,
            "counts": self.counts,
            "metrics": self.metrics,
            "extra": self.extra,
            "versions": self.versions,
            "wall_seconds": round(self.wall_seconds, 3),
        }


def write_manifest(manifest: Manifest, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / MANIFEST
    path.write_text(json.dumps(manifest.to_dict(), indent=2, sort_keys=True) + "\n")
    return path


def read_manifest(stage_dir: Path) -> dict[str, Any]:
    """The manifest a stage wrote into ``stage_dir``; the one reader every tool uses."""
    path = Path(stage_dir) / MANIFEST
    if not path.is_file():
        raise MissingInputError(f"{stage_dir} has no {MANIFEST}: run the stage that writes it")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: not valid JSON ({error.msg}, line {error.lineno})") from None


@contextmanager
def timed(manifest: Manifest) -> Iterator[Manifest]:
    start = time.perf_counter()
    yield manifest
    manifest.wall_seconds = time.perf_counter() - start
