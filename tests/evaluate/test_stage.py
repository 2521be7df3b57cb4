import json
from pathlib import Path

import pytest

from medops.recipe import Recipe
from medops.stages import run_stage


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
    for key in ("macro_f1", "micro_f1", "weighted_f1", "accuracy", "baseline_macro_f1"):
        assert 0.0 <= manifest.metrics[key] <= 1.0
    # the fixture's head *is* a frozen-encoder probe fit on train only; the baseline refits
    # on train + validation: both are real, so they must be numbers from the same rows
    assert manifest.counts == {"test": 9}
    assert (out / "confusion.png").read_bytes()[:4] == b"\x89PNG"
    report = (out / "report.html").read_text()
    assert "Per class" in report and "baseline" in report
    predictions = [
        json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()
    ]
    assert {"id", "label", "predicted"} == set(predictions[0])
    assert "text" not in predictions[0]


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
