"""What the registry stores for a chat model: signature, merged model, adapter, chat settings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from medops.results import Trained
from medops.tasks.instruct.recipe import InstructRecipe


def signature(recipe: InstructRecipe, trained: Trained) -> Any:
    """A user turn in, the model's answer out (the system prompt is the version's own)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    return ModelSignature(
        inputs=Schema([ColSpec("string", "text")]), outputs=Schema([ColSpec("string", "answer")])
    )


def artifacts(recipe: InstructRecipe, trained: Trained, out_dir: Path) -> dict[str, str]:
    """The merged model, the LoRA adapter (when trained with one) and the ``lm`` section, so
    the version is served with the system prompt and decoding it was evaluated with."""
    lm = out_dir / "lm.json"
    lm.write_text(json.dumps(recipe.lm.model_dump(mode="json"), indent=2) + "\n")
    adapter = trained.directory / "adapter"
    extra = {"adapter": str(adapter)} if adapter.is_dir() else {}
    return {"model": str(trained.model_dir), "lm": str(lm), **extra}
