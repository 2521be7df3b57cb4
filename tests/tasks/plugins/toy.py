"""A third task added the documented way: this one module, found on medops.tasks' path.

``task: toy`` predicts the most frequent training label for every text; its recipe adds
one section (``toy``). Nothing else in medops knows about it.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from medops.data.dataset import read_labels, read_split
from medops.manifest import Manifest, timed
from medops.recipe import Recipe, Section
from medops.tasks.spec import Task


class ToySection(Section):
    smoothing: float = Field(0.0, ge=0.0)


class ToyRecipe(Recipe):
    task: Literal["toy"] = "toy"
    toy: ToySection = Field(default_factory=ToySection)


def train(recipe: ToyRecipe, out_dir: Path, prepared: Path, resume: bool = False) -> Manifest:
    manifest = Manifest(stage="train", recipe_hash=recipe.content_hash())
    with timed(manifest):
        labels = Counter(row["label"] for row in read_split(prepared, "train"))
        (out_dir / "model").mkdir(exist_ok=True)
        (out_dir / "model" / "majority.json").write_text(json.dumps(labels.most_common(1)[0][0]))
        manifest.outputs = {"model": "model"}
        manifest.extra = {"mlflow_run_id": "none", "tracking_uri": "none", "labels": list(labels)}
    return manifest


def evaluate(recipe: ToyRecipe, out_dir: Path, prepared: Path, trained: Path) -> Manifest:
    manifest = Manifest(stage="evaluate", recipe_hash=recipe.content_hash())
    with timed(manifest):
        majority = json.loads((trained / "model" / "majority.json").read_text())
        test = read_split(prepared, "test")
        hits = sum(row["label"] == majority for row in test)
        manifest.metrics = {"accuracy": hits / len(test)}
        manifest.counts = {"test": len(test), "classes": len(read_labels(prepared))}
    return manifest


def unused(*_args: Any) -> None:
    raise NotImplementedError("the toy task is never registered or served")


TASK = Task(
    name="toy",
    recipe=ToyRecipe,
    train=f"{__name__}:train",
    evaluate=f"{__name__}:evaluate",
    signature=f"{__name__}:unused",
    artifacts=f"{__name__}:unused",
    pyfunc=__name__,
    predictor=f"{__name__}:unused",
)
