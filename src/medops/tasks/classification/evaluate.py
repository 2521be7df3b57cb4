"""The evaluate stage: the tuned model and a same-run frozen baseline on the held-out rows."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from medops.data.dataset import read_labels, read_split
from medops.errors import DataError
from medops.evaluate.metrics import classification_metrics
from medops.evaluate.report import confusion_png, html_report
from medops.manifest import Manifest, timed
from medops.model.base import resolve_base
from medops.model.classifier import TextClassifier
from medops.model.encoder import embed, load_encoder
from medops.tasks.classification.head import fit_probe_on_rows
from medops.tasks.classification.recipe import ClassificationRecipe

log = logging.getLogger(__name__)


def baseline_metrics(
    recipe: ClassificationRecipe, prepared: Path, classes: list[str]
) -> dict[str, Any]:
    """Frozen base encoder + the same logistic head recipe, fit on the same development rows.

    The only difference from the model is the fine-tuning of the encoder, so the gate's
    "not below baseline" asks exactly whether fine-tuning helped.
    """
    development = read_split(prepared, "train") + read_split(prepared, "validation")
    test = read_split(prepared, "test")
    encoder, tokenizer = load_encoder(resolve_base(recipe.model.base))
    probe = fit_probe_on_rows(encoder, tokenizer, development, classes, recipe)
    texts = [r["text"] for r in test]
    predicted = probe.predict(embed(encoder, tokenizer, texts, recipe.model.max_length))
    return classification_metrics(
        [r["label"] for r in test], [classes[i] for i in predicted], classes
    )


def evaluate(
    recipe: ClassificationRecipe, out_dir: Path, prepared: Path, trained: Path
) -> Manifest:
    manifest = Manifest(stage="evaluate", recipe_hash=recipe.content_hash())
    with timed(manifest):
        manifest.add_input("prepared", prepared)
        manifest.add_input("trained", trained / "model")
        classes = read_labels(prepared)
        test = read_split(prepared, "test")
        model = TextClassifier.load(trained / "model")
        if model.labels != classes:
            raise DataError(
                f"model classes {model.labels} differ from the prepared classes {classes}: "
                "evaluate the model on the dataset it was trained for"
            )
        log.info("evaluate: %d held-out rows", len(test))
        probabilities = model.predict_proba([r["text"] for r in test])
        predicted = [classes[i] for i in np.argmax(probabilities, axis=1)]
        result = classification_metrics([r["label"] for r in test], predicted, classes)
        log.info("evaluate: baseline (frozen encoder + logistic head)")
        baseline = baseline_metrics(recipe, prepared, classes)

        (out_dir / "metrics.json").write_text(
            json.dumps({"model": result, "baseline": baseline, "classes": classes}, indent=2)
        )
        (out_dir / "predictions.jsonl").write_text(
            "".join(
                json.dumps({"id": r["id"], "label": r["label"], "predicted": p}) + "\n"
                for r, p in zip(test, predicted, strict=True)
            )
        )
        confusion_png(result["confusion"], classes, out_dir / "confusion.png", recipe.name)
        html_report(recipe.name, result, baseline, "confusion.png", out_dir / "report.html")
        manifest.outputs = {
            name: name
            for name in ("metrics.json", "predictions.jsonl", "confusion.png", "report.html")
        }
        manifest.metrics = dict(result["summary"])
        manifest.metrics.update({f"baseline_{k}": v for k, v in baseline["summary"].items()})
        manifest.metrics.update({f"f1_{name}": m["f1"] for name, m in result["per_class"].items()})
        manifest.counts = {"test": len(test)}
    return manifest
