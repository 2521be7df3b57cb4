"""The instruct train stage: the causal-LM loop on conversations (loss on every answer)."""

from __future__ import annotations

from pathlib import Path

from medops.manifest import Manifest
from medops.tasks.causal_lm.train import train_generative
from medops.tasks.instruct.recipe import InstructRecipe

EXAMPLES = "medops.tasks.instruct.examples:build_examples"


def train(recipe: InstructRecipe, out_dir: Path, prepared: Path, resume: bool = False) -> Manifest:
    extra = {"system_prompt": recipe.lm.system_prompt}
    return train_generative(recipe, out_dir, prepared, resume, EXAMPLES, extra)
