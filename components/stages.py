"""One lightweight KFP component per medops stage, plus the FineTune hand-off.

KFP serialises these functions by source and runs them in the medops image, so every
import lives inside the body and the body only forwards to ``medops.launch``, which calls
``medops.stages.run_stage``: the stage logic stays in the library, where the CLI and the
operator reach the very same code.

``MEDOPS_IMAGE`` is the default CPU image (``components/images/Dockerfile``, medops
installed, so ``install_kfp_package=False``); a cluster compile sets each task's image from
the recipe. The local runner ignores images and runs the body in the current interpreter.

``storage_root`` and ``run_id`` stay empty in embedded runs (the stage directory is the
artifact); a cluster compile with ``cluster.storage.pvc`` sets them and the directories go
to the volume (``medops.launch.storage``). No ``from __future__ import annotations`` here:
KFP reads the annotations as types.
"""

from kfp import dsl
from kfp.dsl import Artifact, Input, Output

from medops.recipe import Images

MEDOPS_IMAGE = Images().cpu


@dsl.component(base_image=MEDOPS_IMAGE, install_kfp_package=False)
def prepare(
    recipe_json: str,
    prepared: Output[Artifact],
    sources_sha256: str = "",
    storage_root: str = "",
    run_id: str = "",
) -> None:
    """Ingest, clean, de-identify and split the recipe's sources."""
    from medops.launch.kfp_task import run_stage_task
    from medops.launch.storage import prepared_location

    where = prepared_location(storage_root, recipe_json, sources_sha256, run_id)
    run_stage_task("prepare", recipe_json, prepared, {}, where)


@dsl.component(base_image=MEDOPS_IMAGE, install_kfp_package=False)
def train(
    recipe_json: str,
    prepared: Input[Artifact],
    trained: Output[Artifact],
    storage_root: str = "",
    run_id: str = "",
) -> None:
    """Fine-tune the recipe's model on the prepared splits."""
    from medops.launch.kfp_task import run_stage_task
    from medops.launch.storage import run_location

    where = run_location(storage_root, recipe_json, run_id, "train")
    run_stage_task("train", recipe_json, trained, {"prepared": prepared}, where)


@dsl.component(base_image=MEDOPS_IMAGE, install_kfp_package=False)
def evaluate(
    recipe_json: str,
    prepared: Input[Artifact],
    trained: Input[Artifact],
    evaluated: Output[Artifact],
    storage_root: str = "",
    run_id: str = "",
) -> None:
    """Score the trained model on the held-out rows."""
    from medops.launch.kfp_task import run_stage_task
    from medops.launch.storage import run_location

    where = run_location(storage_root, recipe_json, run_id, "evaluate")
    inputs = {"prepared": prepared, "trained": trained}
    run_stage_task("evaluate", recipe_json, evaluated, inputs, where)


@dsl.component(base_image=MEDOPS_IMAGE, install_kfp_package=False)
def register(
    recipe_json: str,
    prepared: Input[Artifact],
    trained: Input[Artifact],
    evaluated: Input[Artifact],
    registered: Output[Artifact],
    storage_root: str = "",
    run_id: str = "",
) -> None:
    """Log the model to the registry and promote it if it passes the gate."""
    from medops.launch.kfp_task import run_stage_task
    from medops.launch.storage import run_location

    where = run_location(storage_root, recipe_json, run_id, "register")
    inputs = {"prepared": prepared, "trained": trained, "evaluated": evaluated}
    run_stage_task("register", recipe_json, registered, inputs, where)


@dsl.component(base_image=MEDOPS_IMAGE, install_kfp_package=False)
def finetune(
    recipe_json: str,
    prepared: Input[Artifact],
    trained: Output[Artifact],
    evaluated: Output[Artifact],
    registered: Output[Artifact],
    storage_root: str,
    run_id: str,
) -> None:
    """Train, evaluate and register through a FineTune resource run by the medops operator."""
    from medops.launch.finetune import hand_off

    outputs = {"train": trained, "evaluate": evaluated, "register": registered}
    hand_off(recipe_json, prepared, outputs, storage_root, run_id)
