import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from medops.data.dataset import read_split
from medops.recipe import Recipe
from medops.registry.integrity import DIGESTS_TAG, tree_digests
from medops.registry.tracking import client, tracking_uri
from medops.stages import run_stage


def _register(
    recipe: Recipe, prepared: Path, trained: Path, tmp: Path, macro_f1: float | None = None
) -> dict:
    evaluated = tmp / "evaluated"
    run_stage("evaluate", recipe, evaluated, {"prepared": prepared, "trained": trained})
    if macro_f1 is not None:  # a weaker model than the synthetic data gives
        manifest = json.loads((evaluated / "manifest.json").read_text())
        manifest["metrics"]["macro_f1"] = macro_f1
        (evaluated / "manifest.json").write_text(json.dumps(manifest))
    out = tmp / "registered"
    inputs = {"prepared": prepared, "trained": trained, "evaluated": evaluated}
    run_stage("register", recipe, out, inputs)
    return json.loads((out / "decision.json").read_text())


def test_passing_gate_registers_tags_and_sets_alias(
    tiny_recipe: Recipe, prepared_dir: Path, trained_dir: Path, tmp_path: Path
) -> None:
    recipe = tiny_recipe.model_copy(
        update={
            "gate": tiny_recipe.gate.model_copy(
                update={"min_value": 0.0, "not_below_baseline": False}
            )
        }
    )
    decision = _register(recipe, prepared_dir, trained_dir, tmp_path)
    assert decision["passed"] and decision["alias"] == "champion"
    mlflow_client = client(recipe)
    version = mlflow_client.get_model_version_by_alias("condition-classifier", "champion")
    assert str(version.version) == decision["version"]
    assert version.tags["recipe_hash"] == recipe.content_hash()
    assert version.tags["dataset_hash"] == "d" * 64
    assert version.tags["gate"] == "passed"
    assert len(version.tags["git_commit"]) >= 7
    # every served file's digest, taken from the trained files before they were uploaded
    assert json.loads(version.tags[DIGESTS_TAG])["model"] == tree_digests(trained_dir / "model")

    mlflow.set_tracking_uri(tracking_uri(recipe))
    model = mlflow.pyfunc.load_model("models:/condition-classifier@champion")
    texts = [r["text"] for r in read_split(prepared_dir, "test")[:2]]
    frame = model.predict(pd.DataFrame({"text": texts}))
    assert list(frame.columns) == ["label", "Acne", "Depression", "Pain"]
    assert frame[["Acne", "Depression", "Pain"]].sum(axis=1).round(5).tolist() == [1.0, 1.0]


def test_refused_gate_registers_without_alias_and_says_why(
    tiny_recipe: Recipe, prepared_dir: Path, trained_dir: Path, tmp_path: Path
) -> None:
    recipe = tiny_recipe
    decision = _register(recipe, prepared_dir, trained_dir, tmp_path, macro_f1=0.5)
    assert not decision["passed"] and decision["alias"] is None
    assert "macro_f1 0.5000 < threshold 0.7500" in decision["reason"]
    mlflow_client = client(recipe)
    with pytest.raises(mlflow.exceptions.MlflowException):
        mlflow_client.get_model_version_by_alias("condition-classifier", "champion")
    version = mlflow_client.get_model_version("condition-classifier", decision["version"])
    assert version.tags["gate"] == "refused"


def test_no_record_text_reaches_the_mlflow_store(
    tiny_recipe: Recipe, prepared_dir: Path, trained_dir: Path, tmp_path: Path
) -> None:
    _register(tiny_recipe, prepared_dir, trained_dir, tmp_path)
    texts = [
        r["text"]
        for split in ("train", "validation", "test")
        for r in read_split(prepared_dir, split)
    ]
    store = Path(tiny_recipe.output_dir) / "mlflow"
    blobs = [p.read_bytes() for p in store.rglob("*") if p.is_file()]
    assert blobs
    leaked = [t for t in texts if any(t.encode() in blob for blob in blobs)]
    assert leaked == []
