"""What the registry stores for a classifier: its pyfunc's signature and artifacts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medops.recipe import Recipe
from medops.results import Trained


def signature(recipe: Recipe, trained: Trained) -> Any:
    """text in; the label and one probability per class out."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec

    outputs: list[ColSpec | TensorSpec] = [ColSpec("string", "label")]
    outputs += [ColSpec("double", name) for name in trained.extra["labels"]]
    return ModelSignature(inputs=Schema([ColSpec("string", "text")]), outputs=Schema(outputs))


def artifacts(recipe: Recipe, trained: Trained, out_dir: Path) -> dict[str, str]:
    return {"model": str(trained.model_dir)}
