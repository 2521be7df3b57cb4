import json
from pathlib import Path

import numpy as np
import pytest

from medops.data.dataset import read_split
from medops.model.classifier import TextClassifier
from medops.recipe import Recipe, RecipeError, build_recipe
from medops.stages import run_stage
from tests.conftest import demo_raw


def by_hand(rows: list[dict[str, str]], classes: list[str]) -> dict[str, float]:
    """Accuracy and macro P/R/F1 from (label, predicted) pairs, without sklearn."""
    per_class = []
    for name in classes:
        tp = sum(r["label"] == name and r["predicted"] == name for r in rows)
        fp = sum(r["label"] != name and r["predicted"] == name for r in rows)
        fn = sum(r["label"] == name and r["predicted"] != name for r in rows)
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
        per_class.append((precision, recall, f1))
    macro = [sum(values) / len(classes) for values in zip(*per_class, strict=True)]
    return {
        "accuracy": sum(r["label"] == r["predicted"] for r in rows) / len(rows),
        "macro_precision": macro[0],
        "macro_recall": macro[1],
        "macro_f1": macro[2],
    }


def test_evaluate_writes_metrics_baseline_and_report(
    tiny_recipe: Recipe, prepared_dir: Path, trained_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "evaluated"
    manifest = run_stage(
        "evaluate", tiny_recipe, out, {"prepared": prepared_dir, "trained": trained_dir}
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["model"]["per_class"]) == {"Acne", "Depression", "Pain"}
    assert sum(c["support"] for c in metrics["model"]["per_class"].values()) == 9
    # the fixture's head *is* a frozen-encoder probe fit on train only; the baseline refits
    # on train + validation: both are real, so they must be numbers from the same rows
    assert manifest.counts == {"test": 9}
    # served in bf16 where the CPU has it: how often that changes a class, measured here
    assert 0.0 <= manifest.metrics["bf16_label_agreement"] <= 1.0
    assert set(metrics["bf16"]) == {"label_agreement", "macro_f1"}
    assert (out / "confusion.png").read_bytes()[:4] == b"\x89PNG"
    report = (out / "report.html").read_text()
    assert "Per class" in report and "baseline" in report
    predictions = [
        json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()
    ]
    assert {"id", "label", "predicted"} == set(predictions[0])
    assert "text" not in predictions[0]
    # the written predictions are the trained model's, row for row on the test split
    test = read_split(prepared_dir, "test")
    assert [(p["id"], p["label"]) for p in predictions] == [(r["id"], r["label"]) for r in test]
    model = TextClassifier.load(trained_dir / "model")
    proba = model.predict_proba([r["text"] for r in test])
    assert [p["predicted"] for p in predictions] == [model.labels[i] for i in np.argmax(proba, 1)]
    # and the reported numbers are those predictions' numbers, recomputed by hand
    classes = json.loads((prepared_dir / "labels.json").read_text())
    for key, value in by_hand(predictions, classes).items():
        assert manifest.metrics[key] == pytest.approx(value), key
    assert manifest.metrics["micro_f1"] == pytest.approx(manifest.metrics["accuracy"])
    assert sum(map(sum, metrics["model"]["confusion"])) == 9
    correct = sum(p["label"] == p["predicted"] for p in predictions)
    assert sum(row[i] for i, row in enumerate(metrics["model"]["confusion"])) == correct
    # the manifest carries metrics.json's numbers, model and baseline not swapped
    for name, value in metrics["model"]["summary"].items():
        assert manifest.metrics[name] == value
    for name, value in metrics["baseline"]["summary"].items():
        assert manifest.metrics[f"baseline_{name}"] == value
    # every summary number has a bootstrap interval around it, both sides, and the paired
    # difference tuned minus baseline has one around the point difference
    for name in ("macro_f1", "accuracy", "macro_precision", "macro_recall"):
        for key in (name, f"baseline_{name}", f"{name}_diff"):
            low, high = manifest.metrics[f"{key}_ci_low"], manifest.metrics[f"{key}_ci_high"]
            assert low <= manifest.metrics[key] <= high, key
        gain = manifest.metrics[name] - manifest.metrics[f"baseline_{name}"]
        assert manifest.metrics[f"{name}_diff"] == pytest.approx(gain)
    assert manifest.metrics["ci_level"] == tiny_recipe.gate.confidence
    assert metrics["intervals"]["macro_f1_diff_ci_low"] == manifest.metrics["macro_f1_diff_ci_low"]
    # one language slice (the recipe's deid.language), all 9 rows: flagged small, not hidden
    english = metrics["slices"]["language"]["en"]
    assert (english["rows"], english["small"]) == (9, True)
    assert english["macro_f1"]["value"] == pytest.approx(manifest.metrics["macro_f1"])
    assert manifest.metrics["slice_language_en_rows"] == 9
    assert manifest.metrics["slice_language_en_macro_f1"] == english["macro_f1"]["value"]
    assert "vs baseline (paired)" in report and "Slices" in report and "SMALL" in report
    assert any(v in report for v in ("better (", "not distinguishable (", "worse ("))
    assert not any(r["text"] in report for r in test), "no note text in the report"


def test_evaluate_refuses_a_model_trained_for_other_classes(
    tiny_recipe: Recipe, prepared_dir: Path, trained_dir: Path, tmp_path: Path
) -> None:
    (prepared_dir / "labels.json").write_text(json.dumps(["Acne", "Depression", "Gout"]))
    with pytest.raises(ValueError, match="differ from the prepared classes"):
        run_stage(
            "evaluate",
            tiny_recipe,
            tmp_path / "e",
            {"prepared": prepared_dir, "trained": trained_dir},
        )


def test_slices_must_be_carried_in_prepared_rows() -> None:
    with pytest.raises(RecipeError, match="evaluate.slices: 'source' is not carried"):
        build_recipe(demo_raw(), ["evaluate.slices=[language, source]"])
    recipe = build_recipe(demo_raw(), ["evaluate.slices=[language]"])
    assert recipe.evaluate.bootstrap_resamples == 1000  # type: ignore[attr-defined]


def test_context_features_are_scored_with_and_without_in_one_run(
    tiny_recipe: Recipe, prepared_dir: Path, tmp_path: Path
) -> None:
    """A feature that names the condition (as a drug's earlier reviews nearly do) lifts the
    model with side inputs; the same run reports the text-only head beside it, paired."""
    from medops.model.encoder import load_encoder
    from medops.tasks.classification.head import fit_probe_on_rows, side_inputs

    classes = json.loads((prepared_dir / "labels.json").read_text())
    for split in ("train", "validation", "test"):
        rows = read_split(prepared_dir, split)
        for number, row in enumerate(rows):  # labels the text does not tell; the context does
            row["label"] = classes[(number * 2 + len(split)) % len(classes)]
            row["context"] = {"top_condition_before": row["label"], "reviews_before": 3}  # type: ignore[assignment]
        (prepared_dir / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    train = read_split(prepared_dir, "train")
    side = side_inputs(train)
    assert side is not None and side.names == ["reviews_before", "top_condition_before"]
    encoder, tokenizer = load_encoder(tiny_recipe.model.base)
    head = fit_probe_on_rows(encoder, tokenizer, train, classes, tiny_recipe, side)
    trained = tmp_path / "trained"
    TextClassifier(encoder, tokenizer, head.coef_, head.intercept_, classes, 32, side).save(
        trained / "model"
    )
    out = tmp_path / "evaluated"
    manifest = run_stage(
        "evaluate", tiny_recipe, out, {"prepared": prepared_dir, "trained": trained}
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["context_features"] == ["reviews_before", "top_condition_before"]
    assert manifest.metrics["macro_f1"] == 1.0 and manifest.metrics["baseline_macro_f1"] == 1.0
    text_only = manifest.metrics["text_only_macro_f1"]
    assert text_only == metrics["text_only"]["summary"]["macro_f1"] < 1.0
    assert manifest.metrics["macro_f1_vs_text_only_diff"] == pytest.approx(1.0 - text_only)
    low = manifest.metrics["macro_f1_vs_text_only_diff_ci_low"]
    assert low <= manifest.metrics["macro_f1_vs_text_only_diff"]
