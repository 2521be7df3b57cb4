import json
from pathlib import Path

import numpy as np
import pytest

from medops.data.dataset import read_split
from medops.evaluate.intervals import Resamples, interval_metrics
from medops.evaluate.metrics import label_scores
from medops.model.classifier import TextClassifier
from medops.recipe import Recipe, RecipeError, build_recipe
from medops.registry.gate import decide
from medops.registry.integrity import UnsafeArtifactError
from medops.stages import run_stage
from tests.conftest import CLASSES, demo_raw


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


def _against_champion(recipe: Recipe) -> Recipe:
    """``recipe`` whose gate scores the champion and decides on the paired interval against
    it; no threshold, so the first candidate is promoted whatever the tiny model scores."""
    gate = recipe.gate.model_copy(
        update={
            "min_value": 0.0,
            "not_below_baseline": False,
            "against_champion": True,
            "interval_against": ["champion"],
        }
    )
    return recipe.model_copy(update={"gate": gate})


def _promote_first(recipe: Recipe, prepared: Path, trained: Path, tmp: Path) -> Path:
    """Evaluate and register ``trained`` while no version holds the alias: the gate has
    nothing to beat, skips the champion, and the version becomes the champion."""
    evaluated = tmp / "evaluated-first"
    inputs = {"prepared": prepared, "trained": trained}
    first = run_stage("evaluate", recipe, evaluated, inputs)
    assert first.metrics["champion_exists"] == 0.0
    assert not [k for k in first.metrics if "champion_" in k and k != "champion_exists"]
    assert "champion" not in _lines(evaluated / "predictions.jsonl")[0]
    run_stage("register", recipe, tmp / "registered", {**inputs, "evaluated": evaluated})
    decision = json.loads((tmp / "registered" / "decision.json").read_text())
    assert decision["passed"] and decision["alias"] == "champion", decision["reason"]
    assert [c["against"] for c in decision["comparisons"]] == ["baseline"]
    return evaluated


def _lines(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _one_class(trained: Path, out: Path, label: str) -> Path:
    """A second candidate: the trained encoder with a head that always answers ``label``."""
    model = TextClassifier.load(trained / "model")
    bias = np.array([1.0 if name == label else 0.0 for name in model.labels])
    head = np.zeros_like(model.weight)
    TextClassifier(model.encoder, model.tokenizer, head, bias, model.labels, 32).save(out / "model")
    return out


def test_the_registered_champion_is_scored_on_the_same_rows_paired(
    tiny_recipe: Recipe, prepared_dir: Path, trained_dir: Path, tmp_path: Path
) -> None:
    recipe = _against_champion(tiny_recipe)
    first = _promote_first(recipe, prepared_dir, trained_dir, tmp_path)
    second = _one_class(trained_dir, tmp_path / "second", "Acne")
    out = tmp_path / "evaluated-second"
    manifest = run_stage("evaluate", recipe, out, {"prepared": prepared_dir, "trained": second})
    metrics = manifest.metrics
    assert metrics["champion_exists"] == 1.0
    # the champion is the registered first model, loaded from the registry: row for row it
    # answers what the first run's candidate answered, on the same test rows
    earlier, predictions = _lines(first / "predictions.jsonl"), _lines(out / "predictions.jsonl")
    assert [p["id"] for p in predictions] == [p["id"] for p in earlier]
    assert [p["champion"] for p in predictions] == [p["predicted"] for p in earlier]
    assert {p["predicted"] for p in predictions} == {"Acne"}
    assert metrics["macro_f1"] == pytest.approx(1 / 6)  # F1 0.5 on Acne, 0 on the others
    earlier_metrics = json.loads((first / "manifest.json").read_text())["metrics"]
    for name in ("macro_f1", "accuracy", "macro_precision", "macro_recall"):
        assert metrics[f"champion_{name}"] == earlier_metrics[name], name
        difference = metrics[f"{name}_vs_champion_diff"]
        assert difference == pytest.approx(metrics[name] - metrics[f"champion_{name}"])
        low, high = (metrics[f"{name}_vs_champion_diff_ci_{end}"] for end in ("low", "high"))
        assert low <= difference <= high, name
    # paired: the interval of the difference on the run's one draw of the test rows
    gold = [p["label"] for p in predictions]
    draw = Resamples(
        len(gold),
        resamples=recipe.evaluate.bootstrap_resamples,
        seed=recipe.seed,
        level=recipe.gate.confidence,
    )
    sides = {
        side: label_scores(gold, [p[key] for p in predictions], CLASSES)
        for side, key in (("model", "predicted"), ("champion", "champion"))
    }
    expected = interval_metrics(sides, draw)
    for key in ("macro_f1_vs_champion_diff_ci_low", "macro_f1_vs_champion_diff_ci_high"):
        assert metrics[key] == pytest.approx(expected[key]), key
    # the gate reads them: the champion's comparison, worded, beside the baseline's
    decision = decide(recipe.gate, metrics)
    assert [c.against for c in decision.comparisons] == ["baseline", "champion"]
    champion = decision.comparisons[1]
    assert (champion.other, champion.ci_low) == (
        metrics["champion_macro_f1"],
        metrics["macro_f1_vs_champion_diff_ci_low"],
    )
    assert champion.text() in decision.reason
    gained = metrics["macro_f1_vs_champion_diff_ci_low"] > 0
    assert decision.passed == (gained and metrics["macro_f1"] > metrics["champion_macro_f1"])
    report = (out / "report.html").read_text()
    assert "Against the current champion (paired)" in report
    written = json.loads((out / "metrics.json").read_text())["champion"]["summary"]
    assert written["macro_f1"] == metrics["champion_macro_f1"]


def test_a_candidate_no_better_than_the_champion_is_refused(
    tiny_recipe: Recipe, prepared_dir: Path, trained_dir: Path, tmp_path: Path
) -> None:
    recipe = _against_champion(tiny_recipe)
    _promote_first(recipe, prepared_dir, trained_dir, tmp_path)
    out = tmp_path / "evaluated-again"
    inputs = {"prepared": prepared_dir, "trained": trained_dir}
    metrics = run_stage("evaluate", recipe, out, inputs).metrics
    # the same weights as the champion: the same answers, so the paired difference is 0 on
    # every resample, and the gate refuses on the point value and on the interval
    assert metrics["champion_macro_f1"] == metrics["macro_f1"]
    difference = [metrics[f"macro_f1_vs_champion_diff{s}"] for s in ("", "_ci_low", "_ci_high")]
    assert difference == [0.0, 0.0, 0.0]
    decision = decide(recipe.gate, metrics)
    assert not decision.passed
    assert f"macro_f1 {metrics['macro_f1']:.4f} <= champion" in decision.reason
    assert "macro_f1_vs_champion_diff_ci_low 0.0000 <= 0 (no gain over the champion" in (
        decision.reason
    )


def test_a_champion_changed_in_the_artifact_store_is_refused(
    tiny_recipe: Recipe, prepared_dir: Path, trained_dir: Path, tmp_path: Path
) -> None:
    """The champion is loaded as serving loads a version: a pickle planted beside its files
    (by a writer of the artifact store) stops evaluation rather than being loaded."""
    recipe = _against_champion(tiny_recipe)
    _promote_first(recipe, prepared_dir, trained_dir, tmp_path)
    stored = sorted((recipe.out / "mlflow").rglob("MLmodel"))
    assert stored, "the registered version's files are in the run's artifact store"
    for mlmodel in stored:
        (mlmodel.parent / "extra.pkl").write_bytes(b"not loaded")
    inputs = {"prepared": prepared_dir, "trained": trained_dir}
    with pytest.raises(UnsafeArtifactError, match="extra.pkl"):
        run_stage("evaluate", recipe, tmp_path / "evaluated-again", inputs)
