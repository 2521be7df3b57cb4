"""The evaluate stage: the tuned model and a same-run frozen baseline on the held-out rows.

Both sides' predictions are scored on the same rows: every summary number gets a bootstrap
interval, tuned minus baseline a paired one, and each slice (``evaluate.slices``) its own.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from medops.data.dataset import read_labels, read_split
from medops.errors import DataError
from medops.evaluate.metrics import classification_metrics, label_scores
from medops.evaluate.report import confusion_png, html_report
from medops.evaluate.uncertainty import measure
from medops.manifest import Manifest, timed
from medops.model.base import resolve_base
from medops.model.classifier import TextClassifier
from medops.model.encoder import embed, load_encoder
from medops.tasks.classification.head import fit_probe_on_rows
from medops.tasks.classification.recipe import ClassificationRecipe

log = logging.getLogger(__name__)
SLICE_METRICS = ("macro_f1", "accuracy")  # per slice, beside the gate's metric


def baseline_predictions(
    recipe: ClassificationRecipe, prepared: Path, classes: list[str]
) -> list[str]:
    """Frozen base encoder + the same logistic head recipe, fit on the same development rows.

    The only difference from the model is the fine-tuning of the encoder, so the gate's
    "not below baseline" asks exactly whether fine-tuning helped. Predictions, not metrics:
    both sides are resampled on the same rows for the paired interval.
    """
    development = read_split(prepared, "train") + read_split(prepared, "validation")
    test = read_split(prepared, "test")
    encoder, tokenizer = load_encoder(resolve_base(recipe.model.base))
    probe = fit_probe_on_rows(encoder, tokenizer, development, classes, recipe)
    texts = [r["text"] for r in test]
    predicted = probe.predict(embed(encoder, tokenizer, texts, recipe.model.max_length))
    return [classes[i] for i in predicted]


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
        gold = [r["label"] for r in test]
        result = classification_metrics(gold, predicted, classes)
        log.info("evaluate: baseline (frozen encoder + logistic head)")
        baseline_predicted = baseline_predictions(recipe, prepared, classes)
        baseline = classification_metrics(gold, baseline_predicted, classes)
        sides = {
            "model": label_scores(gold, predicted, classes),
            "baseline": label_scores(gold, baseline_predicted, classes),
        }
        log.info(
            "evaluate: %d bootstrap resamples, slices %s",
            recipe.evaluate.bootstrap_resamples,
            recipe.evaluate.slices,
        )
        measured = measure(
            sides,
            test,
            SLICE_METRICS,
            evaluation=recipe.evaluate,
            gate=recipe.gate,
            seed=recipe.seed,
            language=recipe.deid.language,
        )
        (out_dir / "metrics.json").write_text(
            json.dumps(
                {
                    "model": result,
                    "baseline": baseline,
                    "classes": classes,
                    "intervals": measured.intervals,
                    "slices": measured.slices,
                },
                indent=2,
            )
        )
        (out_dir / "predictions.jsonl").write_text(
            "".join(
                json.dumps({"id": r["id"], "label": r["label"], "predicted": p}) + "\n"
                for r, p in zip(test, predicted, strict=True)
            )
        )
        confusion_png(result["confusion"], classes, out_dir / "confusion.png", recipe.name)
        manifest.outputs = {
            name: name
            for name in ("metrics.json", "predictions.jsonl", "confusion.png", "report.html")
        }
        manifest.metrics = dict(result["summary"])
        manifest.metrics.update({f"baseline_{k}": v for k, v in baseline["summary"].items()})
        manifest.metrics.update({f"f1_{name}": m["f1"] for name, m in result["per_class"].items()})
        manifest.metrics.update(measured.manifest_metrics(recipe.gate.metric))
        html_report(
            recipe.name,
            result,
            baseline,
            "confusion.png",
            out_dir / "report.html",
            flat=manifest.metrics,
            slices=measured.slices,
        )
        manifest.counts = {"test": len(test)}
    return manifest
