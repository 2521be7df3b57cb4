"""The evaluate stage: the tuned model and a same-run frozen baseline on the held-out rows.

Both sides' predictions are scored on the same rows: every summary number gets a bootstrap
interval, tuned minus baseline a paired one, and each slice (``evaluate.slices``) its own.
With ``gate.against_champion`` the version holding the registry alias is a third side,
scored on the same rows, so the gate can decide on the paired interval against it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from medops.data.dataset import read_labels, read_split
from medops.errors import DataError
from medops.evaluate.intervals import PREFIXES
from medops.evaluate.metrics import classification_metrics, label_scores
from medops.evaluate.report import confusion_png, html_report
from medops.evaluate.uncertainty import measure
from medops.manifest import Manifest, timed
from medops.model.base import resolve_base
from medops.model.classifier import TextClassifier
from medops.model.encoder import embed, load_encoder
from medops.model.side_inputs import SideInputs
from medops.registry.champion import champion_html, fetch_champion
from medops.tasks.classification import TASK
from medops.tasks.classification.head import contexts_of, fit_probe_on_rows
from medops.tasks.classification.recipe import ClassificationRecipe

log = logging.getLogger(__name__)
SLICE_METRICS = ("macro_f1", "accuracy")  # per slice, beside the gate's metric
COLUMNS = {"predicted": "model", "champion": "champion"}  # predictions.jsonl column -> side


def head_predictions(
    encoder: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    recipe: ClassificationRecipe,
    prepared: Path,
    classes: list[str],
    side: SideInputs | None,
) -> list[str]:
    """Test predictions of the recipe's logistic head fit on ``encoder``'s embeddings (and
    ``side``'s context columns) of the development rows."""
    development = read_split(prepared, "train") + read_split(prepared, "validation")
    test = read_split(prepared, "test")
    probe = fit_probe_on_rows(encoder, tokenizer, development, classes, recipe, side)
    features = embed(encoder, tokenizer, [r["text"] for r in test], recipe.model.max_length)
    if side is not None:
        features = np.hstack([features, side.transform(contexts_of(test))])
    return [classes[i] for i in probe.predict(features)]


def baseline_predictions(
    recipe: ClassificationRecipe, prepared: Path, classes: list[str], side: SideInputs | None
) -> list[str]:
    """Frozen base encoder + the same logistic head recipe (and the same context features),
    fit on the same development rows.

    The only difference from the model is the fine-tuning of the encoder, so the gate's
    "not below baseline" asks exactly whether fine-tuning helped. Predictions, not metrics:
    both sides are resampled on the same rows for the paired interval.
    """
    encoder, tokenizer = load_encoder(resolve_base(recipe.model.base))
    return head_predictions(encoder, tokenizer, recipe, prepared, classes, side)


def champion_predictions(
    model_dir: Path, uri: str, test: list[dict[str, str]], classes: list[str]
) -> list[str]:
    """The registered champion's class for each test row, built by the loader serving uses.

    Its classes must be this run's (in any order): a champion trained for other classes
    answers a different question, and no difference of scores would mean anything.
    """
    champion = TextClassifier.load(model_dir)
    if sorted(champion.labels) != sorted(classes):
        raise DataError(
            f"the champion {uri} predicts {champion.labels}, this run's classes are {classes}: "
            "they cannot be compared; set gate.against_champion: false for this run"
        )
    probabilities = champion.predict_proba([r["text"] for r in test], contexts_of(test))
    return [champion.labels[i] for i in np.argmax(probabilities, axis=1)]


def bf16_agreement(
    model: TextClassifier, test: list[dict[str, str]], predicted: list[str], gold: list[str]
) -> dict[str, float]:
    """How the model scores with its encoder in bf16, as ``serve.dtype: auto`` serves it on
    a CPU with native bf16: the share of test rows whose class is unchanged, and macro-F1.
    Converts ``model`` in place: call it last."""
    half = model.to(torch.bfloat16)
    probabilities = half.predict_proba([r["text"] for r in test], contexts_of(test))
    labels = [model.labels[i] for i in np.argmax(probabilities, axis=1)]
    same = sum(a == b for a, b in zip(labels, predicted, strict=True)) / len(labels)
    summary = classification_metrics(gold, labels, model.labels)["summary"]
    return {"label_agreement": same, "macro_f1": summary["macro_f1"]}


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
        probabilities = model.predict_proba([r["text"] for r in test], contexts_of(test))
        predicted = [classes[i] for i in np.argmax(probabilities, axis=1)]
        gold = [r["label"] for r in test]
        log.info("evaluate: baseline (frozen encoder + logistic head)")
        predictions = {
            "model": predicted,
            "baseline": baseline_predictions(recipe, prepared, classes, model.side),
        }
        champion = fetch_champion(recipe, TASK.pyfunc_path().name)
        if champion is not None and champion.model is not None:
            predictions["champion"] = champion_predictions(
                champion.model, champion.uri, test, classes
            )
        if model.side is not None:
            log.info("evaluate: the same tuned encoder without context features (text only)")
            predictions["text_only"] = head_predictions(
                model.encoder, model.tokenizer, recipe, prepared, classes, None
            )
        results = {
            side: classification_metrics(gold, labels, classes)
            for side, labels in predictions.items()
        }
        bf16 = bf16_agreement(model, test, predicted, gold)
        log.info(
            "evaluate: %d bootstrap resamples, slices %s",
            recipe.evaluate.bootstrap_resamples,
            recipe.evaluate.slices,
        )
        measured = measure(
            {side: label_scores(gold, labels, classes) for side, labels in predictions.items()},
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
                    **results,
                    "context_features": model.side.names if model.side else [],
                    "bf16": bf16,
                    "classes": classes,
                    "intervals": measured.intervals,
                    "slices": measured.slices,
                },
                indent=2,
            )
        )
        (out_dir / "predictions.jsonl").write_text(
            "".join(
                json.dumps(
                    {
                        "id": r["id"],
                        "label": r["label"],
                        **{c: predictions[s][i] for c, s in COLUMNS.items() if s in predictions},
                    }
                )
                + "\n"
                for i, r in enumerate(test)
            )
        )
        result = results["model"]
        confusion_png(result["confusion"], classes, out_dir / "confusion.png", recipe.name)
        manifest.outputs = {
            name: name
            for name in ("metrics.json", "predictions.jsonl", "confusion.png", "report.html")
        }
        manifest.metrics = {
            f"{PREFIXES[side]}{key}": value
            for side, scored in results.items()
            for key, value in scored["summary"].items()
        }
        manifest.metrics.update(champion.metrics() if champion else {})
        manifest.metrics["bf16_label_agreement"] = bf16["label_agreement"]
        manifest.metrics.update({f"f1_{name}": m["f1"] for name, m in result["per_class"].items()})
        manifest.metrics.update(measured.manifest_metrics(recipe.gate.metric))
        html_report(
            recipe.name,
            result,
            results["baseline"],
            "confusion.png",
            out_dir / "report.html",
            extra_html=champion_html(manifest.metrics, result["summary"]),
            flat=manifest.metrics,
            slices=measured.slices,
        )
        manifest.counts = {"test": len(test)}
    return manifest
