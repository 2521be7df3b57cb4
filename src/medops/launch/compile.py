"""Compile a recipe's pipeline to KFP IR YAML for submission to a Kubeflow Pipelines cluster."""

from __future__ import annotations

from pathlib import Path

from kfp import compiler

from medops.recipe import Recipe
from pipelines.classification import build_pipeline


def compile_pipeline(recipe: Recipe, output: Path) -> Path:
    """Write the pipeline for ``recipe`` (recipe bound as its default) to ``output``."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(build_pipeline(recipe), package_path=str(output))
    return output
