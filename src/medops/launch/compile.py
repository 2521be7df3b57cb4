"""Compile a recipe's pipeline to KFP IR YAML for submission to a Kubeflow Pipelines cluster."""

from __future__ import annotations

from pathlib import Path

from kfp import compiler

from medops.recipe import Recipe, RecipeError
from medops.registry.tracking import TRACKING_ENV
from pipelines.classification import build_pipeline


def compile_pipeline(recipe: Recipe, output: Path) -> Path:
    """Write the cluster pipeline for ``recipe`` (recipe bound as its default) to ``output``.

    Refuses a recipe whose stages could not share an MLflow run on a cluster: each task is
    its own pod, so the embedded default (SQLite under output_dir) would be lost between them.
    """
    if recipe.registry.tracking_uri is None and recipe.cluster.mlflow_secret is None:
        raise RecipeError(
            "a cluster run needs a shared MLflow server: set cluster.mlflow_secret (a Secret "
            f"with key {TRACKING_ENV}) or registry.tracking_uri"
        )
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(build_pipeline(recipe, cluster=True), package_path=str(output))
    return output
