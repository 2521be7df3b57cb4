"""Training errors the CLI reports in one line (kept free of Ray so the CLI imports fast)."""

from __future__ import annotations

from pathlib import Path

from medops.errors import MedopsError
from medops.recipe import Recipe


class TrainingFailed(MedopsError, RuntimeError):
    """Training stopped for good; says where the checkpoints are and how to continue."""

    def __init__(self, recipe: Recipe, storage: Path, error: BaseException) -> None:
        first = next((line for line in str(error).splitlines() if line.strip()), repr(error))
        super().__init__(
            f"training failed after resources.max_failures={recipe.resources.max_failures} "
            f"restart(s): {first.strip()}; checkpoints stay in {storage} (`medops train "
            "--resume` continues a causal-lm training from there); the worker tracebacks are "
            "in the log above"
        )


class ResumeError(MedopsError, ValueError):
    """An earlier training's checkpoints are in the way, or ``--resume`` was misused."""
