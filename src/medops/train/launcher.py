"""Ray Train policy (scaling, failures, checkpoints) kept apart from the loop's mechanism."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ray
from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from medops.recipe import Recipe
from medops.train.errors import TrainingFailed

log = logging.getLogger(__name__)


def _ensure_ray(recipe: Recipe) -> tuple[bool, str | None]:
    """Join a cluster when RAY_ADDRESS is set (KubeRay); else start a private local Ray.

    Returns whether this call started Ray (and so must shut it down) and the private
    session directory to remove afterwards.
    """
    if ray.is_initialized():
        return False, None
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_TRAIN_ENABLE_PRINT_PATCH", "0")
    if os.environ.get("RAY_ADDRESS"):
        ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=True)
        return True, None
    cpus = max(2, recipe.resources.num_workers * recipe.resources.cpus_per_worker)
    temp_dir = tempfile.mkdtemp(prefix="medops-ray-")
    ray.init(
        num_cpus=cpus,
        num_gpus=recipe.resources.num_workers * recipe.resources.gpus_per_worker,
        include_dashboard=False,
        _temp_dir=temp_dir,
        log_to_driver=True,
        logging_level=logging.WARNING,
    )
    return True, temp_dir


def scaling_config(recipe: Recipe) -> ScalingConfig:
    """Workers and what each one reserves; the dry run reports this very object."""
    resources = {"CPU": recipe.resources.cpus_per_worker}
    if recipe.resources.use_gpu:
        resources["GPU"] = recipe.resources.gpus_per_worker
    return ScalingConfig(
        num_workers=recipe.resources.num_workers,
        use_gpu=recipe.resources.use_gpu,
        resources_per_worker=resources,
    )


def fit(
    recipe: Recipe,
    config: dict[str, Any],
    storage: Path,
    loop: Callable[[dict[str, Any]], None],
) -> ray.train.Result:
    """Run ``loop`` on ``resources.num_workers`` workers; raise if training failed.

    The Ray run is named after the recipe under ``storage``: running again with the same
    ``storage`` continues from its latest checkpoint (``medops train --resume``), and a
    worker that dies is restarted from it up to ``resources.max_failures`` times.
    """
    started, temp_dir = _ensure_ray(recipe)
    try:
        trainer = TorchTrainer(
            loop,
            train_loop_config=config,
            scaling_config=scaling_config(recipe),
            run_config=RunConfig(
                name=f"{recipe.name}-train",
                storage_path=str(storage.resolve()),
                checkpoint_config=CheckpointConfig(num_to_keep=2),
                failure_config=FailureConfig(max_failures=recipe.resources.max_failures),
            ),
        )
        log.info(
            "train: %d Ray workers, %s, %d epochs",
            recipe.resources.num_workers,
            recipe.train.method,
            recipe.train.epochs,
        )
        result = trainer.fit()
    except ray.train.TrainingFailedError as error:  # Ray Train v2 raises instead of returning
        raise TrainingFailed(recipe, storage, error) from error
    finally:
        if started:
            ray.shutdown()
        if temp_dir:  # Ray's logs and spilled objects: gigabytes after a few runs
            shutil.rmtree(temp_dir, ignore_errors=True)
    if result.error is not None:
        raise TrainingFailed(recipe, storage, result.error) from result.error
    if result.checkpoint is None:
        raise RuntimeError("training finished without a checkpoint; see the Ray logs")
    return result
