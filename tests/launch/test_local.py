"""run_local really executes through kfp.local: each task is a subprocess on fake stages."""

from __future__ import annotations

import json

import pytest

from medops.launch.local import PIPELINE_LOG, PipelineFailed, run_local
from medops.manifest import read_manifest
from medops.recipe import Recipe

pytestmark = pytest.mark.usefixtures("fake_stages")


def test_runs_all_stages_and_returns_their_directories(recipe: Recipe) -> None:
    dirs = run_local(recipe)

    assert list(dirs) == ["prepare", "train", "evaluate", "register"]
    run_dir = dirs["prepare"].parents[1]
    assert run_dir.parent == (recipe.out / "pipeline").resolve()
    for stage, path in dirs.items():
        assert read_manifest(path)["stage"] == stage
        assert (path.parent / "task.log").is_file()
    received = json.loads((dirs["register"] / "inputs.json").read_text())
    assert received == {
        "prepared": str(dirs["prepare"]),
        "trained": str(dirs["train"]),
        "evaluated": str(dirs["evaluate"]),
    }
    assert read_manifest(dirs["evaluate"])["inputs"]["trained"]["path"] == str(dirs["train"])
    assert "finished with status SUCCESS" in (run_dir / PIPELINE_LOG).read_text()


def test_failed_task_is_named_with_its_log(recipe: Recipe, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDOPS_FAKE_FAIL", "train")

    with pytest.raises(PipelineFailed) as caught:
        run_local(recipe)

    error = caught.value
    assert error.task == "train"
    assert error.reason == "ValueError: fake train failed on purpose"
    assert str(error).count("\n") == 1, "one line of cause and one of where, no traceback"
    assert error.log.name == "task.log" and error.log.parent.name == "train"
    assert "fake train failed on purpose" in error.log.read_text()
    run_dir = error.log.parents[1]
    assert read_manifest(run_dir / "prepare" / "prepared")["stage"] == "prepare"
    assert not (run_dir / "evaluate").exists(), "nothing downstream of the failure runs"


def test_runs_are_kept_apart(recipe: Recipe) -> None:
    first = run_local(recipe)
    second = run_local(recipe)
    assert first["train"] != second["train"]
    assert len(list((recipe.out / "pipeline").iterdir())) == 2
