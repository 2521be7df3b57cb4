"""What every medops KFP component does inside its container, in one importable place.

Components are serialised by source, so they cannot share a helper defined next to them;
this module ships in the medops package (and so in the image) instead. It only maps KFP
artifacts to directories and back: the work is ``medops.stages.run_stage``.
"""

from __future__ import annotations

import json
from pathlib import Path

from kfp import dsl

from medops.manifest import Manifest
from medops.recipe import build_recipe
from medops.stages import run_stage


def artifact_metadata(manifest: Manifest) -> dict[str, object]:
    """The manifest numbers worth seeing in the KFP UI; the full manifest is in the artifact."""
    return {
        "stage": manifest.stage,
        "recipe_hash": manifest.recipe_hash,
        "counts": dict(manifest.counts),
        "metrics": dict(manifest.metrics),
        "wall_seconds": round(manifest.wall_seconds, 3),
    }


def run_stage_task(
    stage: str,
    recipe_json: str,
    output: dsl.Artifact,
    inputs: dict[str, dsl.Artifact],
) -> Manifest:
    """Run ``stage`` into ``output``'s directory, reading upstream stage directories."""
    recipe = build_recipe(json.loads(recipe_json))
    manifest = run_stage(
        stage,
        recipe,
        Path(output.path),
        {name: Path(artifact.path) for name, artifact in inputs.items()},
    )
    output.metadata.update(artifact_metadata(manifest))
    return manifest
