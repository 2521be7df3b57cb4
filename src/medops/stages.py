"""The one entry point every launcher calls: CLI, KFP component, container, operator.

A stage is ``fn(recipe, out_dir, **inputs) -> Manifest`` where each input is the output
directory of an upstream stage. Launchers only map names to directories; the work lives
in the library function.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

from medops.manifest import Manifest, write_manifest
from medops.recipe import Recipe

# stage name -> (module:function, names of upstream stage directories it takes, in order)
STAGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "prepare": ("medops.data.prepare:prepare", ()),
    "train": ("medops.train.stage:train", ("prepared",)),
    "evaluate": ("medops.evaluate.stage:evaluate", ("prepared", "trained")),
    "register": ("medops.registry.stage:register", ("prepared", "trained", "evaluated")),
}


def stage_function(name: str) -> Callable[..., Manifest]:
    if name not in STAGES:
        raise KeyError(f"unknown stage {name!r}; stages: {', '.join(STAGES)}")
    module, _, attr = STAGES[name][0].partition(":")
    return getattr(importlib.import_module(module), attr)


def run_stage(name: str, recipe: Recipe, out_dir: Path, inputs: dict[str, Path]) -> Manifest:
    """Run one stage into ``out_dir`` and write its manifest there."""
    wanted = STAGES[name][1] if name in STAGES else ()
    missing = [key for key in wanted if key not in inputs]
    unknown = [key for key in inputs if key not in wanted]
    if missing or unknown:
        raise ValueError(
            f"stage {name!r} takes inputs {list(wanted)}; missing {missing}, unexpected {unknown}"
        )
    function = stage_function(name)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = function(recipe, out_dir, **{key: Path(inputs[key]) for key in wanted})
    write_manifest(manifest, out_dir)
    return manifest
