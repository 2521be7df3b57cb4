"""One lightweight KFP component per medops stage.

KFP serialises these functions by source and runs them in ``MEDOPS_IMAGE``, so every
import lives inside the body and the body only forwards to ``medops.launch.kfp_task``,
which calls ``medops.stages.run_stage``: the stage logic stays in the library, where the
CLI and the operator reach the very same code.

``MEDOPS_IMAGE`` is a placeholder name for cluster runs: building and publishing the
image (medops installed, so ``install_kfp_package=False``) is a later issue. The local
runner ignores the image and runs the body in the current interpreter. No
``from __future__ import annotations`` here: KFP reads the annotations as types.
"""

from kfp import dsl
from kfp.dsl import Artifact, Input, Output

MEDOPS_IMAGE = "ghcr.io/medops/medops-cpu:0.1.0"


@dsl.component(base_image=MEDOPS_IMAGE, install_kfp_package=False)
def prepare(recipe_json: str, prepared: Output[Artifact]) -> None:
    """Ingest, clean, de-identify and split the recipe's sources."""
    from medops.launch.kfp_task import run_stage_task

    run_stage_task("prepare", recipe_json, prepared, {})


@dsl.component(base_image=MEDOPS_IMAGE, install_kfp_package=False)
def train(recipe_json: str, prepared: Input[Artifact], trained: Output[Artifact]) -> None:
    """Fine-tune the recipe's model on the prepared splits."""
    from medops.launch.kfp_task import run_stage_task

    run_stage_task("train", recipe_json, trained, {"prepared": prepared})


@dsl.component(base_image=MEDOPS_IMAGE, install_kfp_package=False)
def evaluate(
    recipe_json: str,
    prepared: Input[Artifact],
    trained: Input[Artifact],
    evaluated: Output[Artifact],
) -> None:
    """Score the trained model on the held-out rows."""
    from medops.launch.kfp_task import run_stage_task

    run_stage_task("evaluate", recipe_json, evaluated, {"prepared": prepared, "trained": trained})


@dsl.component(base_image=MEDOPS_IMAGE, install_kfp_package=False)
def register(
    recipe_json: str,
    prepared: Input[Artifact],
    trained: Input[Artifact],
    evaluated: Input[Artifact],
    registered: Output[Artifact],
) -> None:
    """Log the model to the registry and promote it if it passes the gate."""
    from medops.launch.kfp_task import run_stage_task

    run_stage_task(
        "register",
        recipe_json,
        registered,
        {"prepared": prepared, "trained": trained, "evaluated": evaluated},
    )
