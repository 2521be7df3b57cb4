"""The stage graph and the one entry point every launcher calls: CLI, KFP, container, operator.

A stage is ``fn(recipe, out_dir, **inputs) -> Manifest`` where each input is the output
directory of an upstream stage. Launchers only map names to directories; the work lives
in the library function, and train/evaluate come from the recipe's task.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medops.errors import ConfigurationError
from medops.manifest import MANIFEST, Manifest, write_manifest
from medops.recipe import Recipe


@dataclass(frozen=True)
class Stage:
    """One node of the graph: the directory it writes is named ``output`` downstream."""

    name: str
    output: str
    inputs: tuple[str, ...]
    function: str | None = None  # "module:function"; None: the task's own


STAGES: dict[str, Stage] = {
    stage.name: stage
    for stage in (
        Stage("prepare", "prepared", ()),
        Stage("train", "trained", ("prepared",)),
        Stage("evaluate", "evaluated", ("prepared", "trained")),
        Stage(
            "register",
            "registered",
            ("prepared", "trained", "evaluated"),
            "medops.registry.stage:register",
        ),
    )
}
# output name -> the stage that writes it (how a launcher finds an input's directory)
PRODUCER: dict[str, str] = {stage.output: stage.name for stage in STAGES.values()}


def _task(recipe: Recipe) -> Any:
    """The recipe's task plug-in, found at run time (see ``recipe.task_recipes``)."""
    return importlib.import_module("medops.tasks").task_of(recipe)


def stage_function(name: str, recipe: Recipe) -> Callable[..., Manifest]:
    if name not in STAGES:
        raise ConfigurationError(f"unknown stage {name!r}; stages: {', '.join(STAGES)}")
    reference = STAGES[name].function
    if reference is None:
        return _task(recipe).function(name)
    module, _, attr = reference.partition(":")
    return getattr(importlib.import_module(module), attr)


def run_stage(name: str, recipe: Recipe, out_dir: Path, inputs: dict[str, Path]) -> Manifest:
    """Run one stage into ``out_dir`` and write its manifest there."""
    wanted = STAGES[name].inputs if name in STAGES else ()
    missing = [key for key in wanted if key not in inputs]
    unknown = [key for key in inputs if key not in wanted]
    if missing or unknown:
        raise ConfigurationError(
            f"stage {name!r} takes inputs {list(wanted)}; missing {missing}, unexpected {unknown}"
        )
    function = stage_function(name, recipe)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = function(recipe, out_dir, **{key: Path(inputs[key]) for key in wanted})
    write_manifest(manifest, out_dir)
    return manifest


def run_training(
    recipe: Recipe, prepared: Path | None, out_dir: Path | None, resume: bool
) -> Manifest:
    """`medops train`: prepare if needed, then the train stage into a stable directory.

    The fixed directory (``<output_dir>/train`` unless given) is what makes ``--resume``
    possible: it holds the Ray run and its checkpoints between invocations.
    """
    prepared = Path(prepared or recipe.out / "prepare")
    out_dir = Path(out_dir or recipe.out / "train")
    task = _task(recipe)
    if resume and not task.resumable:
        registry = importlib.import_module("medops.tasks")
        resumable = ", ".join(n for n, t in registry.tasks().items() if t.resumable)
        raise ConfigurationError(
            f"--resume: task {task.name} trains without step checkpoints; "
            f"tasks that resume: {resumable}"
        )
    if not (prepared / MANIFEST).is_file():
        run_stage("prepare", recipe, prepared, {})
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = task.function("train")(
        recipe, out_dir, prepared, **({"resume": True} if resume else {})
    )
    write_manifest(manifest, out_dir)
    return manifest
