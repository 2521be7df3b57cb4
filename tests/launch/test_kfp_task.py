"""The in-container half of a component, run in process on fake stages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kfp import dsl

from medops.launch.kfp_task import run_stage_task
from medops.manifest import read_manifest
from medops.recipe import Recipe
from pipelines.classification import encode_recipe

pytestmark = pytest.mark.usefixtures("fake_stages")


def test_runs_the_stage_into_the_artifact_and_copies_numbers(
    recipe: Recipe, tmp_path: Path
) -> None:
    prepared = dsl.Artifact(uri=str(tmp_path / "prepared"))
    trained = dsl.Artifact(uri=str(tmp_path / "trained"))
    run_stage_task("prepare", encode_recipe(recipe), prepared, {})
    run_stage_task("train", encode_recipe(recipe), trained, {"prepared": prepared})

    manifest = read_manifest(Path(trained.path))
    assert manifest["inputs"]["prepared"]["path"] == prepared.path
    assert json.loads((Path(trained.path) / "inputs.json").read_text()) == {
        "prepared": prepared.path
    }
    assert trained.metadata == {
        "stage": "train",
        "recipe_hash": recipe.content_hash(),
        "counts": {"rows": 3},
        "metrics": {"macro_f1": 0.5},
        "wall_seconds": 0.0,
    }


def test_wrong_inputs_are_refused_before_any_work(recipe: Recipe, tmp_path: Path) -> None:
    out = dsl.Artifact(uri=str(tmp_path / "evaluated"))
    with pytest.raises(ValueError, match="missing"):
        run_stage_task("evaluate", encode_recipe(recipe), out, {})
    assert not Path(out.path).exists()
