"""The classification pipeline: prepare -> train -> evaluate -> register.

The recipe travels as one JSON string parameter whose default is the resolved recipe, so
a compiled pipeline is a self-contained record of the run it performs (and its cache
key), and each component rebuilds the same validated ``Recipe`` from it.
"""

import json
from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Artifact
from kfp.dsl.graph_component import GraphComponent

from components.stages import evaluate, prepare, register, train
from medops.recipe import Recipe

# stage name -> the name of the artifact it writes (and the pipeline output that exposes it)
STAGE_OUTPUTS: dict[str, str] = {
    "prepare": "prepared",
    "train": "trained",
    "evaluate": "evaluated",
    "register": "registered",
}


class StageOutputs(NamedTuple):
    """Every stage directory is a pipeline output, so launchers find them without guessing."""

    prepared: Artifact
    trained: Artifact
    evaluated: Artifact
    registered: Artifact


def encode_recipe(recipe: Recipe) -> str:
    """Canonical JSON of the resolved recipe (sorted keys: same recipe, same text)."""
    return json.dumps(recipe.to_dict(), sort_keys=True, separators=(",", ":"))


def build_pipeline(recipe: Recipe) -> GraphComponent:
    """A KFP pipeline named after ``recipe`` with the recipe bound as its default."""
    default_recipe = encode_recipe(recipe)

    @dsl.pipeline(
        name=recipe.name,
        description=f"medops {recipe.task} recipe {recipe.name} ({recipe.content_hash()}): "
        "prepare -> train -> evaluate -> register",
    )
    def classification(recipe_json: str = default_recipe) -> StageOutputs:
        prepared = prepare(recipe_json=recipe_json).outputs["prepared"]
        # training and registration have side effects that a cache hit would silently skip
        train_task = train(recipe_json=recipe_json, prepared=prepared)
        train_task.set_caching_options(False)
        trained = train_task.outputs["trained"]
        evaluate_task = evaluate(recipe_json=recipe_json, prepared=prepared, trained=trained)
        evaluated = evaluate_task.outputs["evaluated"]
        register_task = register(
            recipe_json=recipe_json, prepared=prepared, trained=trained, evaluated=evaluated
        )
        register_task.set_caching_options(False)
        return StageOutputs(
            prepared=prepared,
            trained=trained,
            evaluated=evaluated,
            registered=register_task.outputs["registered"],
        )

    return classification
