"""The docker runner's set-up of each step: what a container sees, and the exit-code guard."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from medops.launch.containers import IMAGE_USER, check_stage_outputs, docker_runner
from medops.launch.errors import PipelineFailed
from medops.manifest import Manifest, write_manifest
from medops.recipe import Recipe
from medops.registry.tracking import TRACKING_ENV


def _mounts(recipe: Recipe) -> dict[str, bool]:
    """target -> read-only, for every bind mount of a step's container."""
    args = docker_runner(recipe).container_run_args
    return {mount["Target"]: mount["ReadOnly"] for mount in args["mounts"]}


def test_a_step_sees_its_run_directory_and_its_inputs_read_only(
    tiny_recipe: Recipe, tmp_path: Path
) -> None:
    source = tmp_path / "notes.tsv"
    source.write_text("review\tcondition\n", encoding="utf-8")
    sources = [tiny_recipe.data.sources[0].model_copy(update={"uri": str(source)})]
    recipe = tiny_recipe.model_copy(
        update={"data": tiny_recipe.data.model_copy(update={"sources": sources})}
    )
    mounts = _mounts(recipe)
    assert mounts[str(recipe.out.resolve())] is False  # the run writes its stage directories
    assert mounts[str(source)] is True
    assert mounts[recipe.model.base] is True  # the tiny model is a local directory
    # pkg:// sources are inside the image: nothing else of the host goes in
    assert set(mounts) == {str(recipe.out.resolve()), str(source), recipe.model.base}


def test_a_step_runs_unprivileged_read_only_and_offline(
    tiny_recipe: Recipe, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TRACKING_ENV, raising=False)
    monkeypatch.setenv("MEDOPS_DEID_KEY", "k" * 32)
    args = docker_runner(tiny_recipe).container_run_args
    assert args["read_only"] is True
    assert args["network_mode"] == "none"
    # root runs the steps as the image's user, anyone else as themselves: never uid 0
    expected = IMAGE_USER if os.getuid() == 0 else f"{os.getuid()}:{os.getgid()}"
    assert args["user"] == expected and not expected.startswith("0:")
    assert args["environment"] == {"MEDOPS_DEID_KEY": "k" * 32}


def test_a_tracking_server_gives_the_step_the_host_network(
    tiny_recipe: Recipe, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TRACKING_ENV, "http://127.0.0.1:5000")
    args = docker_runner(tiny_recipe).container_run_args
    assert args["network_mode"] == "host"
    assert args["environment"][TRACKING_ENV] == "http://127.0.0.1:5000"


def test_a_stage_directory_without_its_manifest_fails_the_run(tmp_path: Path) -> None:
    done, lost = tmp_path / "prepare", tmp_path / "train"
    write_manifest(Manifest(stage="prepare", recipe_hash="h"), done)
    lost.mkdir()
    check_stage_outputs({"prepare": done}, {}, tmp_path / "pipeline.log")
    with pytest.raises(PipelineFailed) as failed:
        check_stage_outputs({"prepare": done, "train": lost}, {}, tmp_path / "pipeline.log")
    assert failed.value.task == "train"
    assert "manifest.json" in failed.value.reason
