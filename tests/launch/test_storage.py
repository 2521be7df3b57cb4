"""Stage directories on the shared volume: names, places, and a real run through kfp.local."""

from __future__ import annotations

import json
from pathlib import Path

import kfp.local
import pytest

from medops.launch.storage import prepared_location, run_key, run_location
from medops.manifest import read_manifest
from medops.recipe import Recipe, build_recipe
from pipelines.classification import build_pipeline, encode_recipe

RUN_ID = "3f2a9c1e-77b0-4d2e-9a4f-0c1d2e3f4a5b"


def test_run_key_is_a_short_stable_dns_name() -> None:
    assert run_key("condition-demo", RUN_ID) == "condition-demo-3f2a9c1e"
    long = run_key("a" * 39 + "-" + "b" * 30, RUN_ID)
    assert long == "a" * 39 + "-3f2a9c1e", "cut to 40 characters, no trailing dash"
    with pytest.raises(ValueError, match="run id"):
        run_key("demo", "")


def test_locations(recipe: Recipe) -> None:
    text = encode_recipe(recipe)
    assert run_location("", text, RUN_ID, "train") == ""
    assert prepared_location("", text, "abc") == ""
    assert run_location("/v", text, RUN_ID, "train") == "/v/launch-test-3f2a9c1e/train"
    assert prepared_location("/v", text, "", RUN_ID) == "/v/launch-test-3f2a9c1e/prepare"
    cached = prepared_location("/v", text, "abc")
    assert cached.startswith("/v/prepared/launch-test-")
    assert cached == prepared_location("/v", text, "abc"), "same inputs, same place"
    assert cached != prepared_location("/v", text, "abd"), "new data, new place"
    other = encode_recipe(build_recipe({**recipe.to_dict(), "seed": 7}))
    assert cached != prepared_location("/v", other, "abc"), "new recipe, new place"


@pytest.mark.usefixtures("fake_stages")
@pytest.mark.filterwarnings("ignore:.*(no effect in the current local runner|non-Python base)")
def test_a_cluster_run_keeps_stage_directories_on_the_volume(
    recipe: Recipe, tmp_path: Path
) -> None:
    """The cluster pipeline itself, run by kfp.local on fake stages with a directory as the
    volume: artifacts carry only the manifest and where the directory is, and each stage
    reads its inputs from the volume through KFP's real metadata passing."""
    volume = tmp_path / "volume"
    placed = build_recipe(
        {
            **recipe.to_dict(),
            "cluster": {"storage": {"pvc": "medops-data", "mount_path": str(volume)}},
        }
    )
    kfp.local.init(
        runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root")
    )
    outputs = build_pipeline(placed, cluster=True)().outputs

    locations = {name: Path(artifact.metadata["location"]) for name, artifact in outputs.items()}
    run_dirs = {locations[name].parent for name in ("trained", "evaluated", "registered")}
    assert len(run_dirs) == 1
    run_dir = run_dirs.pop()
    assert run_dir.parent == volume and run_dir.name.startswith("launch-test-")
    assert locations["prepared"] == volume / run_dir.name / "prepare", "unreadable sources"
    for name, artifact in outputs.items():
        assert read_manifest(locations[name])["stage"] == artifact.metadata["stage"]
        own = sorted(p.name for p in Path(artifact.path).iterdir())
        assert own == ["manifest.json"], f"{name}: only the manifest travels through KFP"
    assert json.loads((locations["registered"] / "inputs.json").read_text()) == {
        "prepared": str(locations["prepared"]),
        "trained": str(locations["trained"]),
        "evaluated": str(locations["evaluated"]),
    }
