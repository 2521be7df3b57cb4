"""The train stage: linear probe -> Ray Train fine-tuning -> adapter + merged model export."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import cast

import numpy as np
from peft import PeftModel
from safetensors.torch import load_file
from sklearn.utils.class_weight import compute_class_weight

from medops.data.dataset import read_labels, read_split
from medops.manifest import Manifest, timed
from medops.model.adapters import PooledClassifier, adapt, load_trainable_state
from medops.model.base import resolve_base
from medops.model.classifier import TextClassifier
from medops.model.encoder import load_encoder
from medops.registry.tracking import client, open_run, redacted, tracking_uri
from medops.tasks.classification.head import fit_probe_on_rows, side_inputs
from medops.tasks.classification.loop import STATE_FILE, train_loop
from medops.tasks.classification.recipe import ClassificationRecipe
from medops.train.launcher import fit

log = logging.getLogger(__name__)


def _class_weights(labels: list[str], classes: list[str], enabled: bool) -> list[float]:
    """Balanced cross-entropy weights: macro-F1 counts the rare conditions as much."""
    if not enabled:
        return [1.0] * len(classes)
    weights = compute_class_weight("balanced", classes=np.array(classes), y=np.array(labels))
    return [float(w) for w in weights]


def train(recipe: ClassificationRecipe, out_dir: Path, prepared: Path) -> Manifest:
    manifest = Manifest(stage="train", recipe_hash=recipe.content_hash())
    with timed(manifest):
        manifest.add_input("prepared", prepared)
        classes = read_labels(prepared)
        train_rows, val_rows = read_split(prepared, "train"), read_split(prepared, "validation")
        base_path = resolve_base(recipe.model.base)
        max_length = recipe.model.max_length
        encoder, tokenizer = load_encoder(base_path)

        log.info("train: linear probe on %d frozen embeddings", len(train_rows))
        probe = fit_probe_on_rows(encoder, tokenizer, train_rows, classes, recipe)
        train_labels = [r["label"] for r in train_rows]

        run_id = open_run(recipe, run_name=f"{recipe.name}-train")
        config = {
            "recipe": recipe.to_dict(),
            "labels": classes,
            "base_path": base_path,
            "prepared_dir": str(prepared.resolve()),
            "head_weight": probe.coef_.astype(np.float32).tolist(),
            "head_bias": probe.intercept_.astype(np.float32).tolist(),
            "class_weights": _class_weights(train_labels, classes, recipe.train.class_weighting),
            "tracking_uri": tracking_uri(recipe),
            "mlflow_run_id": run_id,
        }
        try:
            result = fit(recipe, config, out_dir / "ray", loop=train_loop)
        except Exception:
            client(recipe).set_terminated(run_id, status="FAILED")
            raise

        # fit raises unless the run succeeded, and a run reports metrics and a checkpoint
        if result.checkpoint is None or result.metrics is None:
            raise RuntimeError("Ray Train reported success without a checkpoint or metrics")
        with result.checkpoint.as_directory() as checkpoint_dir:
            state = load_file(str(Path(checkpoint_dir) / STATE_FILE))
        fresh, _ = load_encoder(base_path)
        model = PooledClassifier(adapt(fresh, recipe.train), probe.coef_, probe.intercept_)
        load_trainable_state(model, state, recipe.train)
        if recipe.train.method == "lora":
            model.encoder.save_pretrained(str(out_dir / "adapter"))
            tuned = cast(PeftModel, model.encoder).merge_and_unload()  # adapt wrapped it (LoRA)
            manifest.outputs["adapter"] = "adapter"
        else:
            tuned = model.encoder
        tuned.eval()

        weight = model.head.weight.detach().numpy()
        bias = model.head.bias.detach().numpy()
        side = side_inputs(train_rows)  # the loop tunes on text; context joins at the head
        if recipe.train.head_refit or side is not None:
            rows = train_rows + val_rows
            log.info(
                "train: refitting the head on %d tuned embeddings%s",
                len(rows),
                f" and {len(side.names)} context features" if side else "",
            )
            head = fit_probe_on_rows(tuned, tokenizer, rows, classes, recipe, side)
            weight, bias = head.coef_, head.intercept_
        classifier = TextClassifier(tuned, tokenizer, weight, bias, classes, max_length, side)
        classifier.save(out_dir / "model")
        manifest.outputs["model"] = "model"

        final = {k: float(v) for k, v in result.metrics.items() if isinstance(v, int | float)}
        manifest.metrics = {k: v for k, v in final.items() if k != "epoch"}
        manifest.counts = {"train": len(train_rows), "validation": len(val_rows)}
        manifest.extra = {
            "mlflow_run_id": run_id,
            "tracking_uri": redacted(tracking_uri(recipe)),
            "method": recipe.train.method,
            "epochs": recipe.train.epochs,
            "workers": recipe.resources.num_workers,
            "labels": classes,
        }
    return manifest
