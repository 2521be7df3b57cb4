from pathlib import Path

import numpy as np

from medops.data.dataset import read_split
from medops.model.classifier import TextClassifier
from medops.recipe import Recipe
from medops.registry.tracking import client
from medops.stages import run_stage


def test_train_stage_on_two_ray_workers(tiny_recipe: Recipe, prepared_dir: Path, tmp_path: Path):
    out = tmp_path / "trained"
    manifest = run_stage("train", tiny_recipe, out, {"prepared": prepared_dir})

    assert (out / "adapter" / "adapter_config.json").is_file()
    model = TextClassifier.load(out / "model")
    texts = [r["text"] for r in read_split(prepared_dir, "test")]
    probabilities = model.predict_proba(texts)
    assert probabilities.shape == (len(texts), 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)

    assert manifest.extra["workers"] == 2
    assert {"train_loss", "val_macro_f1", "val_loss"} <= set(manifest.metrics)
    run = client(tiny_recipe).get_run(manifest.extra["mlflow_run_id"])
    assert run.data.params["train.method"] == "lora"
    history = client(tiny_recipe).get_metric_history(run.info.run_id, "val_macro_f1")
    assert [m.step for m in history] == [1], "rank 0 alone logs one point per epoch"
