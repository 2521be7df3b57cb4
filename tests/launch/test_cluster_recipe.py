"""The recipe's ``cluster`` section: defaults, partial overrides, and errors that name the key."""

from __future__ import annotations

import pytest

from medops.recipe import RecipeError, is_pinned_image, load_recipe
from tests.conftest import DEMO_RECIPE


def test_defaults_leave_the_embedded_run_alone() -> None:
    cluster = load_recipe(DEMO_RECIPE).cluster
    assert cluster.training == "local" and cluster.storage.pvc is None
    assert cluster.mlflow_secret is None
    assert set(cluster.stages) == {"prepare", "train", "evaluate", "register", "finetune"}


def test_a_stage_given_in_part_keeps_its_other_defaults() -> None:
    stages = load_recipe(DEMO_RECIPE, ["cluster.stages.train.cpu_limit=8"]).cluster.stages
    assert stages["train"].cpu_limit == "8", "a YAML number is a quantity too"
    assert (
        stages["train"].memory_limit
        == load_recipe(DEMO_RECIPE).cluster.stages["train"].memory_limit
    )
    assert stages["prepare"] == load_recipe(DEMO_RECIPE).cluster.stages["prepare"]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("cluster.stages.trian.cpu_limit=1", "unknown stage 'trian'; stages: prepare, train"),
        ("cluster.stages.train.cpus=1", "train.cpus: unknown key; allowed here: cpu_limit"),
        ("cluster.stages.train.cpu_request=9", "cpu_request 9 is above cpu_limit 4"),
        ("cluster.stages.train.memory_limit=1Gi", "memory_request 8Gi is above memory_limit 1Gi"),
        ("cluster.stages.train.memory_limit=lots", "cluster.stages.train.memory_limit"),
        ("cluster.images.gpu=medops-gpu:latest", "gpu: pin the image by tag or digest"),
        ("cluster.retry.backoff=soon", "cluster.retry.backoff"),
        ("cluster.training=ray", "cluster.training: 'ray' is not allowed; use one of"),
        ("cluster.training=finetune", "training: finetune needs storage.pvc"),
        ("cluster.storage.pvc=Medops_Data", "cluster.storage.pvc"),
        ("cluster.gpus=1", "cluster.gpus: unknown key; allowed here: accelerator"),
    ],
)
def test_bad_values_name_the_key(override: str, message: str) -> None:
    with pytest.raises(RecipeError, match=message.replace("(", r"\(")):
        load_recipe(DEMO_RECIPE, [override])


@pytest.mark.parametrize(
    ("image", "pinned"),
    [
        ("python:3.11.7-slim-bookworm", True),
        ("ghcr.io/medops/medops-gpu@sha256:" + "a" * 64, True),
        ("registry.local:5000/medops:1.0", True),
        ("registry.local:5000/medops", False),
        ("medops:latest", False),
        ("medops", False),
    ],
)
def test_pinned_images(image: str, pinned: bool) -> None:
    assert is_pinned_image(image) is pinned
