"""What every medops KFP component does inside its container, in one importable place.

Components are serialised by source, so they cannot share a helper defined next to them;
this module ships in the medops package (and so in the image) instead. It only maps KFP
artifacts to directories and back: the work is ``medops.stages.run_stage``.

A stage directory lives in its KFP artifact (embedded runs) or on the cluster's shared
volume (``medops.launch.storage``); then the artifact holds a copy of ``manifest.json``
and its metadata key ``location`` says where the directory is.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from kfp import dsl

from medops.manifest import MANIFEST, Manifest, read_manifest
from medops.recipe import build_recipe
from medops.stages import run_stage

LOCATION = "location"


def artifact_metadata(manifest: dict[str, Any]) -> dict[str, object]:
    """The manifest numbers worth seeing in the KFP UI; the full manifest is in the artifact."""
    return {
        "stage": manifest["stage"],
        "recipe_hash": manifest["recipe_hash"],
        "counts": dict(manifest["counts"]),
        "metrics": dict(manifest["metrics"]),
        "wall_seconds": round(manifest["wall_seconds"], 3),
    }


def stage_dir(artifact: dsl.Artifact) -> Path:
    """The directory an upstream stage wrote: on shared storage if its artifact says so."""
    return Path(artifact.metadata.get(LOCATION) or artifact.path)


def publish(output: dsl.Artifact, directory: Path) -> None:
    """Record the stage directory ``directory`` in ``output``: its numbers, and its place
    when it is not the artifact's own directory (then the manifest is copied in)."""
    output.metadata.update(artifact_metadata(read_manifest(directory)))
    own = Path(output.path)
    if directory != own:
        output.metadata[LOCATION] = str(directory)
        own.mkdir(parents=True, exist_ok=True)
        shutil.copy2(directory / MANIFEST, own / MANIFEST)


def run_stage_task(
    stage: str,
    recipe_json: str,
    output: dsl.Artifact,
    inputs: dict[str, dsl.Artifact],
    location: str = "",
) -> Manifest:
    """Run ``stage`` into ``location`` (default: ``output``'s directory), reading upstream
    stage directories from their artifacts."""
    recipe = build_recipe(json.loads(recipe_json))
    directory = Path(location or output.path)
    manifest = run_stage(
        stage, recipe, directory, {name: stage_dir(artifact) for name, artifact in inputs.items()}
    )
    publish(output, directory)
    return manifest
