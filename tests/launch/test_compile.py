"""The compiled IR is what a cluster runs: check its shape, not just that it compiles."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.stages import MEDOPS_IMAGE
from medops.launch.compile import compile_pipeline
from medops.recipe import Recipe, build_recipe
from pipelines.classification import encode_recipe

UPSTREAM = {
    "prepare": set(),
    "train": {"prepare"},
    "evaluate": {"prepare", "train"},
    "register": {"prepare", "train", "evaluate"},
}


@pytest.fixture
def ir(recipe: Recipe, tmp_path: Path) -> dict[str, Any]:
    path = compile_pipeline(recipe, tmp_path / "nested" / "pipeline.yaml")
    assert path.is_file()
    return yaml.safe_load(path.read_text())


def test_four_tasks_in_stage_order(ir: dict[str, Any]) -> None:
    tasks = ir["root"]["dag"]["tasks"]
    assert set(tasks) == set(UPSTREAM)
    for name, upstream in UPSTREAM.items():
        assert set(tasks[name].get("dependentTasks", [])) == upstream, name


def test_each_input_comes_from_the_stage_that_writes_it(ir: dict[str, Any]) -> None:
    tasks = ir["root"]["dag"]["tasks"]
    producer = {"prepared": "prepare", "trained": "train", "evaluated": "evaluate"}
    for name, upstream in UPSTREAM.items():
        artifacts = tasks[name]["inputs"].get("artifacts", {})
        wired = {key: spec["taskOutputArtifact"] for key, spec in artifacts.items()}
        expected = {
            key: {"producerTask": task, "outputArtifactKey": key}
            for key, task in producer.items()
            if task in upstream
        }
        assert wired == expected, name


def test_training_and_registration_are_never_cached(ir: dict[str, Any]) -> None:
    tasks = ir["root"]["dag"]["tasks"]
    for name in ("train", "register"):
        assert not tasks[name]["cachingOptions"].get("enableCache", False), name
    for name in ("prepare", "evaluate"):
        assert tasks[name]["cachingOptions"]["enableCache"] is True, name


def test_recipe_is_bound_as_the_default(ir: dict[str, Any], recipe: Recipe) -> None:
    parameter = ir["root"]["inputDefinitions"]["parameters"]["recipe_json"]
    assert parameter["defaultValue"] == encode_recipe(recipe)
    assert build_recipe(json.loads(parameter["defaultValue"])) == recipe
    assert ir["pipelineInfo"]["name"] == recipe.name
    for name in UPSTREAM:
        assert ir["root"]["dag"]["tasks"][name]["inputs"]["parameters"]["recipe_json"] == {
            "componentInputParameter": "recipe_json"
        }


def test_components_run_in_the_medops_image_without_pip(ir: dict[str, Any]) -> None:
    executors = ir["deploymentSpec"]["executors"]
    assert len(executors) == 4
    for executor in executors.values():
        container = executor["container"]
        assert container["image"] == MEDOPS_IMAGE
        assert "pip install" not in " ".join(container["command"] + container["args"])


def test_every_stage_directory_is_a_pipeline_output(ir: dict[str, Any]) -> None:
    selectors = ir["root"]["dag"]["outputs"]["artifacts"]
    assert {
        name: spec["artifactSelectors"][0]["producerSubtask"] for name, spec in selectors.items()
    } == {
        "prepared": "prepare",
        "trained": "train",
        "evaluated": "evaluate",
        "registered": "register",
    }
