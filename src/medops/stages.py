"""The one entry point every launcher calls: CLI, KFP component, container, operator.

A stage is ``fn(recipe, out_dir, **inputs) -> Manifest`` where each input is the output
directory of an upstream stage. Launchers only map names to directories; the work lives
in the library function.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

from medops.errors import ConfigurationError
from medops.manifest import MANIFEST, Manifest, write_manifest
from medops.recipe import Recipe

# stage name -> (module:function, names of upstream stage directories it takes, in order)
STAGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "prepare": ("medops.data.prepare:prepare", ()),
    "train": ("medops.train.stage:train", ("prepared",)),
    "evaluate": ("medops.evaluate.stage:evaluate", ("prepared", "trained")),
    "register": ("medops.registry.stage:register", ("prepared", "trained", "evaluated")),
}


# task: causal-lm runs the same stages on the same inputs with these functions instead
TASK_STAGES: dict[str, dict[str, str]] = {
    "causal-lm": {
        "train": "medops.train.lm_stage:train_lm",
        "evaluate": "medops.evaluate.lm_stage:evaluate_lm",
    },
}


def stage_function(name: str, task: str = "classification") -> Callable[..., Manifest]:
    if name not in STAGES:
        raise ConfigurationError(f"unknown stage {name!r}; stages: {', '.join(STAGES)}")
    target = TASK_STAGES.get(task, {}).get(name, STAGES[name][0])
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def run_stage(name: str, recipe: Recipe, out_dir: Path, inputs: dict[str, Path]) -> Manifest:
    """Run one stage into ``out_dir`` and write its manifest there."""
    wanted = STAGES[name][1] if name in STAGES else ()
    missing = [key for key in wanted if key not in inputs]
    unknown = [key for key in inputs if key not in wanted]
    if missing or unknown:
        raise ConfigurationError(
            f"stage {name!r} takes inputs {list(wanted)}; missing {missing}, unexpected {unknown}"
        )
    function = stage_function(name, recipe.task)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = function(recipe, out_dir, **{key: Path(inputs[key]) for key in wanted})
    write_manifest(manifest, out_dir)
    return manifest


def run_training(
    recipe: Recipe, prepared: Path | None, out_dir: Path | None, resume: bool
) -> Manifest:
    """`medops train`: prepare if needed, then train into a stable directory.

    The fixed directory (``<output_dir>/train`` unless given) is what makes ``--resume``
    possible: it holds the Ray run and its checkpoints between invocations.
    """
    prepared = Path(prepared or recipe.out / "prepare")
    out_dir = Path(out_dir or recipe.out / "train")
    if resume and recipe.task != "causal-lm":
        raise ConfigurationError(
            "--resume is for task: causal-lm (classification trains in minutes)"
        )
    if not (prepared / MANIFEST).is_file():
        run_stage("prepare", recipe, prepared, {})
    out_dir.mkdir(parents=True, exist_ok=True)
    function = stage_function("train", recipe.task)
    manifest = function(recipe, out_dir, prepared, **({"resume": True} if resume else {}))
    write_manifest(manifest, out_dir)
    return manifest
