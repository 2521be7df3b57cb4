"""What the registry stores for an extraction model: signature, merged model, prompt settings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from medops.results import Trained
from medops.tasks.causal_lm.recipe import CausalLMRecipe


def signature(recipe: CausalLMRecipe, trained: Trained) -> Any:
    """text in; the answer, whether it is JSON, and one column per target field out."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec

    names = ["answer", "json_valid", *trained.extra["fields"]]
    outputs: list[ColSpec | TensorSpec] = [
        ColSpec("boolean" if n == "json_valid" else "string", n) for n in names
    ]
    return ModelSignature(inputs=Schema([ColSpec("string", "text")]), outputs=Schema(outputs))


def artifacts(recipe: CausalLMRecipe, trained: Trained, out_dir: Path) -> dict[str, str]:
    """The merged model, the LoRA adapter (when trained with one) and the ``lm`` section,
    so the version prompts as evaluation did."""
    lm = out_dir / "lm.json"
    lm.write_text(json.dumps(recipe.lm.model_dump(mode="json"), indent=2) + "\n")
    adapter = trained.directory / "adapter"  # LoRA: served on a shared base (medops serve)
    extra = {"adapter": str(adapter)} if adapter.is_dir() else {}
    return {"model": str(trained.model_dir), "lm": str(lm), **extra}
