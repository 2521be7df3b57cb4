"""A third task added the documented way: this one module, found on medops.tasks' path.

``task: toy`` predicts the most frequent training label for every text; its recipe adds
one section (``toy``). It trains, evaluates, registers (this file is its MLflow "model
from code") and serves over v1/v2 through medops' own predictor base. Nothing else in
medops knows about it.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any, Literal

import mlflow
import pandas as pd
from kserve.protocol.infer_type import InferOutput, InferResponse
from mlflow.pyfunc import PythonModel
from pydantic import Field

from medops.data.dataset import read_labels, read_split
from medops.manifest import Manifest, timed
from medops.recipe import Recipe, Section
from medops.registry.tracking import open_run, tracking_uri
from medops.results import Trained
from medops.serve.model import PyfuncPredictor, Scored
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
        manifest.extra = {
            "mlflow_run_id": open_run(recipe, "toy-train"),
            "tracking_uri": tracking_uri(recipe),
            "labels": list(labels),
        }
    return manifest


def evaluate(recipe: ToyRecipe, out_dir: Path, prepared: Path, trained: Path) -> Manifest:
    manifest = Manifest(stage="evaluate", recipe_hash=recipe.content_hash())
    with timed(manifest):
        majority = json.loads((trained / "model" / "majority.json").read_text())
        test = read_split(prepared, "test")
        hits = sum(row["label"] == majority for row in test)
        # the majority rule is its own baseline: the gate compares against it
        manifest.metrics = {"accuracy": hits / len(test), "baseline_accuracy": hits / len(test)}
        manifest.counts = {"test": len(test), "classes": len(read_labels(prepared))}
    return manifest


def signature(recipe: ToyRecipe, trained: Trained) -> Any:
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    return ModelSignature(Schema([ColSpec("string", "text")]), Schema([ColSpec("string", "label")]))


def artifacts(recipe: ToyRecipe, trained: Trained, out_dir: Path) -> dict[str, str]:
    return {"majority": str(trained.model_dir / "majority.json")}


class ToyPyfunc(PythonModel):
    def load_context(self, context: Any) -> None:
        self.majority = json.loads(Path(context.artifacts["majority"]).read_text())

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> Any:
        return pd.DataFrame({"label": [self.majority] * len(model_input)})


class ToyPredictor(PyfuncPredictor):
    def check(self, frame: pd.DataFrame) -> None:
        assert list(frame.columns) == ["label"]

    def encode(self, result: Scored) -> dict | InferResponse:
        labels = [str(label) for label in result.frame["label"]]
        if result.batch.protocol == "v1":
            return {"predictions": [{"label": label} for label in labels]}
        output = InferOutput("label", [len(labels)], "BYTES", labels)
        return InferResponse(result.batch.request_id or "toy", self.name, [output])


mlflow.models.set_model(ToyPyfunc())  # what register logs: this file, as model from code

TASK = Task(
    name="toy",
    recipe=ToyRecipe,
    train=f"{__name__}:train",
    evaluate=f"{__name__}:evaluate",
    signature=f"{__name__}:signature",
    artifacts=f"{__name__}:artifacts",
    pyfunc=__name__,
    predictor=f"{__name__}:ToyPredictor",
)
