"""`medops run --runner docker`: the KFP pipeline with every step in the medops image.

The same recipe runs once with the subprocess runner and once in containers; the two must
agree on every row count and on the metrics. Real MiniLM, real reviews, small samples.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from medops.launch.errors import PipelineFailed
from medops.launch.local import run_local
from medops.recipe import Recipe, build_recipe
from medops.results import Evaluated, Ran, Registered
from tests.conftest import demo_raw
from tests.e2e.conftest import IMAGE
from tests.samples import sample_reviews

pytestmark = pytest.mark.e2e
FIGURES = Path("runs/e2e/docker_runner.json")


def _recipe(data: Path, out: Path) -> Recipe:
    raw = demo_raw()
    raw["data"]["sources"] = [
        {"uri": str(data / "train.tsv"), "role": "train"},
        {"uri": str(data / "test.tsv"), "role": "test"},
    ]
    return build_recipe(
        raw,
        [
            f"output_dir={out}",
            f"cluster.images.cpu={IMAGE}",
            "data.top_k_classes=3",
            "data.validation_fraction=0.2",
            "model.max_length=64",
            "train.epochs=1",
            "train.batch_size=8",
            "gate.min_value=0.0",
            "gate.not_below_baseline=false",
        ],
    )


def _timed(recipe: Recipe, runner: str) -> tuple[dict[str, Path], float]:
    started = time.perf_counter()
    outputs = run_local(recipe, runner)
    return outputs, time.perf_counter() - started


def test_pipeline_in_containers_matches_the_subprocess_runner(
    tmp_path: Path, docker_client
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    sample_reviews("drugsComTrain.tsv", 14, data / "train.tsv")
    sample_reviews("drugsComTest.tsv", 6, data / "test.tsv")

    local, local_seconds = _timed(_recipe(data, tmp_path / "subprocess"), "subprocess")
    boxed, boxed_seconds = _timed(_recipe(data, tmp_path / "docker"), "docker")

    # every step ran in a container of the image (kfp.local names it in the step's log)
    run_dir = next((tmp_path / "docker" / "pipeline").iterdir())
    for stage in boxed:
        assert f"Found image '{IMAGE}'" in (run_dir / stage / "task.log").read_text(), stage
    for stage in local:
        assert Ran.read(boxed[stage]).counts == Ran.read(local[stage]).counts, stage
    local_metrics = Evaluated.read(local["evaluate"]).metrics
    boxed_metrics = Evaluated.read(boxed["evaluate"]).metrics
    assert local_metrics.keys() == boxed_metrics.keys()
    # the two runs train in different processes (thread counts, library builds): the metrics
    # may differ by one held-out row's worth, never more
    tolerance = 1 / Ran.read(local["evaluate"]).counts["test"] + 1e-9
    for name in ("macro_f1", "accuracy", "baseline_macro_f1", "baseline_accuracy"):
        assert abs(local_metrics[name] - boxed_metrics[name]) <= tolerance, name
    registered = Registered.read(boxed["register"])
    assert registered.gate_passed
    assert registered.model_uri.startswith("models:/condition-classifier/")
    # the step wrote the registry under the run's own (mounted) output directory, and the
    # host reads the version from there
    assert registered.tracking_uri == f"sqlite:///{tmp_path / 'docker' / 'mlflow' / 'mlflow.db'}"
    version = MlflowClient(registered.tracking_uri).get_model_version(
        "condition-classifier", registered.version
    )
    assert version.run_id == registered.mlflow_run_id

    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    FIGURES.write_text(
        json.dumps(
            {
                "image": IMAGE,
                "image_bytes": docker_client.images.get(IMAGE).attrs["Size"],
                "pipeline_seconds": {
                    "subprocess": round(local_seconds, 1),
                    "docker": round(boxed_seconds, 1),
                },
                "stage_seconds": {
                    stage: {
                        "subprocess": round(Ran.read(local[stage]).wall_seconds, 1),
                        "docker": round(Ran.read(boxed[stage]).wall_seconds, 1),
                    }
                    for stage in local
                },
                "metrics": {
                    name: {"subprocess": local_metrics[name], "docker": boxed_metrics[name]}
                    for name in ("macro_f1", "accuracy")
                },
            },
            indent=2,
        )
        + "\n"
    )


def test_a_step_that_fails_in_its_container_fails_the_run(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    # a train file without the label column: prepare refuses it inside its container
    (data / "train.tsv").write_text("review\tdrugName\nfine\tx\n", encoding="utf-8")
    sample_reviews("drugsComTest.tsv", 2, data / "test.tsv")
    with pytest.raises(PipelineFailed) as failed:
        run_local(_recipe(data, tmp_path / "run"), "docker")
    assert failed.value.task == "prepare"
    assert "condition" in failed.value.reason
    assert failed.value.log.is_file()
