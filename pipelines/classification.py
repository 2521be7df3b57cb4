"""The classification pipeline: prepare -> train -> evaluate -> register.

The recipe travels as one JSON string parameter whose default is the resolved recipe, so
a compiled pipeline is a self-contained record of the run it performs (and its cache
key), and each component rebuilds the same validated ``Recipe`` from it.

One definition serves both ways to run it. Embedded (``cluster=False``, kfp.local): stage
directories are the artifacts, no placement, no retries. Cluster (``cluster=True``): each
task is placed from the recipe's ``cluster`` section (``pipelines.placement``), stage
directories go to the shared volume when there is one, and with ``training: finetune``
the operator's FineTune does train -> evaluate -> register: prepare -> finetune.
"""

import json
from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Artifact
from kfp.dsl.graph_component import GraphComponent

from components.stages import evaluate, finetune, prepare, register, train
from medops.launch.sources import sources_sha256
from medops.recipe import Recipe
from medops.stages import STAGES
from pipelines.placement import place

# stage name -> the name of the artifact it writes (and the pipeline output that exposes it)
STAGE_OUTPUTS: dict[str, str] = {name: stage.output for name, stage in STAGES.items()}


class StageOutputs(NamedTuple):
    """Every stage directory is a pipeline output, so launchers find them without guessing."""

    prepared: Artifact
    trained: Artifact
    evaluated: Artifact
    registered: Artifact


def encode_recipe(recipe: Recipe) -> str:
    """Canonical JSON of the resolved recipe (sorted keys: same recipe, same text)."""
    return json.dumps(recipe.to_dict(), sort_keys=True, separators=(",", ":"))


def build_pipeline(
    recipe: Recipe, cluster: bool = False, image: str | None = None
) -> GraphComponent:
    """A KFP pipeline named after ``recipe`` with the recipe bound as its default.

    ``image``: run every task of an embedded run in this image (kfp.local's DockerRunner);
    a cluster run places each task's image from the recipe instead.
    """
    default_recipe = encode_recipe(recipe)
    default_sources = sources_sha256(recipe) if cluster else ""
    on_volume = cluster and recipe.cluster.storage.pvc is not None
    storage = {"storage_root": recipe.cluster.storage.mount_path} if on_volume else {}
    hand_off = cluster and recipe.cluster.training == "finetune"
    # prepare is cached only when its inputs include the sources' bytes, not just their URIs,
    # and never before a FineTune: the operator reads prepared data from the run's directory
    cache_prepare = bool(default_sources) and not hand_off

    @dsl.pipeline(
        name=recipe.name,
        description=f"medops {recipe.task} recipe {recipe.name} ({recipe.content_hash()}): "
        "prepare -> train -> evaluate -> register",
    )
    def classification(
        recipe_json: str = default_recipe, sources_sha256: str = default_sources
    ) -> StageOutputs:
        per_run = {**storage, "run_id": dsl.PIPELINE_JOB_ID_PLACEHOLDER} if storage else {}
        prepare_task = prepare(
            recipe_json=recipe_json,
            sources_sha256=sources_sha256,
            **(storage if cache_prepare else per_run),
        )
        prepare_task.set_caching_options(cache_prepare)
        prepared = prepare_task.outputs["prepared"]
        # training and registration have side effects that a cache hit would silently skip
        if hand_off:
            finetune_task = finetune(recipe_json=recipe_json, prepared=prepared, **per_run)
            finetune_task.set_caching_options(False)
            tasks = {"prepare": prepare_task, "finetune": finetune_task}
            trained, evaluated, registered = (
                finetune_task.outputs[name] for name in ("trained", "evaluated", "registered")
            )
        else:
            train_task = train(recipe_json=recipe_json, prepared=prepared, **per_run)
            train_task.set_caching_options(False)
            trained = train_task.outputs["trained"]
            evaluate_task = evaluate(
                recipe_json=recipe_json, prepared=prepared, trained=trained, **per_run
            )
            evaluated = evaluate_task.outputs["evaluated"]
            register_task = register(
                recipe_json=recipe_json,
                prepared=prepared,
                trained=trained,
                evaluated=evaluated,
                **per_run,
            )
            register_task.set_caching_options(False)
            registered = register_task.outputs["registered"]
            tasks = {
                "prepare": prepare_task,
                "train": train_task,
                "evaluate": evaluate_task,
                "register": register_task,
            }
        for stage, task in tasks.items():
            if cluster:
                place(task, stage, recipe)
            elif image:
                task.set_container_image(image)
        return StageOutputs(
            prepared=prepared, trained=trained, evaluated=evaluated, registered=registered
        )

    return classification
