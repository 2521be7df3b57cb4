"""Run the real register stage on the tiny classifier (evaluate first), as launchers do."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from medops.recipe import Recipe, build_recipe
from medops.stages import run_stage

Register = Callable[..., dict[str, Any]]


def with_overrides(recipe: Recipe, *overrides: str) -> Recipe:
    """``recipe`` with ``key=value`` overrides applied as the CLI would."""
    return build_recipe(recipe.to_dict(), list(overrides))


@pytest.fixture
def register(prepared_dir: Path, trained_dir: Path, tmp_path: Path) -> Register:
    """``register(recipe, name, macro_f1=None)``: evaluate, optionally pin macro_f1 (a weaker
    or stronger model than the synthetic data gives), register; returns the stage directory,
    its manifest and decision.json."""

    def run(recipe: Recipe, name: str = "registered", macro_f1: float | None = None) -> dict:
        evaluated = tmp_path / f"evaluated-{name}"
        if not (evaluated / "manifest.json").is_file():
            inputs = {"prepared": prepared_dir, "trained": trained_dir}
            run_stage("evaluate", recipe, evaluated, inputs)
        if macro_f1 is not None:
            manifest = json.loads((evaluated / "manifest.json").read_text())
            manifest["metrics"]["macro_f1"] = macro_f1
            (evaluated / "manifest.json").write_text(json.dumps(manifest))
        out = tmp_path / name
        inputs = {"prepared": prepared_dir, "trained": trained_dir, "evaluated": evaluated}
        manifest = run_stage("register", recipe, out, inputs)
        return {
            "dir": out,
            "evaluated": evaluated,
            "manifest": manifest.to_dict(),
            "decision": json.loads((out / "decision.json").read_text()),
        }

    return run
