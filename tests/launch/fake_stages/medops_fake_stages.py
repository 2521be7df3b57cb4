"""Stand-ins for the real stages: fast, deterministic, and failing on request.

Each writes what it was given to ``inputs.json`` so a test can check the DAG's wiring;
``MEDOPS_FAKE_FAIL=<stage>`` makes that stage raise.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from medops.manifest import Manifest
from medops.recipe import Recipe


def _fake(stage: str) -> Callable[..., Manifest]:
    def run(recipe: Recipe, out_dir: Path, **inputs: Path) -> Manifest:
        if os.environ.get("MEDOPS_FAKE_FAIL") == stage:
            raise ValueError(f"fake {stage} failed on purpose")
        (out_dir / "inputs.json").write_text(json.dumps({k: str(v) for k, v in inputs.items()}))
        manifest = Manifest(stage=stage, recipe_hash=recipe.content_hash())
        for name, path in inputs.items():
            manifest.add_input(name, path)
        manifest.counts["rows"] = 3
        manifest.metrics["macro_f1"] = 0.5
        return manifest

    return run


prepare = _fake("prepare")
train = _fake("train")
evaluate = _fake("evaluate")
register = _fake("register")
