import json
from pathlib import Path

from medops.launch.summary import SUMMARY, run_summary, summary_lines
from medops.manifest import Manifest, write_manifest
from medops.recipe import Recipe


def _stage(tmp: Path, name: str, **fields) -> Path:
    manifest = Manifest(stage=name, recipe_hash="h")
    for key, value in fields.items():
        setattr(manifest, key, value)
    write_manifest(manifest, tmp / name)
    return tmp / name


def test_summary_pairs_every_metric_with_its_baseline(tiny_lm_recipe: Recipe, tmp_path: Path):
    tiny_lm_recipe.out.mkdir(parents=True)
    outputs = {
        "prepare": _stage(tmp_path, "prepare", counts={"rows_in": 10, "rows_kept": 9}),
        "train": _stage(tmp_path, "train"),
        "evaluate": _stage(
            tmp_path,
            "evaluate",
            metrics={
                "condition_macro_f1": 0.6,
                "baseline_condition_macro_f1": 0.1,
                "json_validity": 0.9,
                "baseline_json_validity": 0.0,
                "unpaired": 1.0,
            },
        ),
        "register": _stage(
            tmp_path,
            "register",
            extra={
                "gate_passed": True,
                "gate_reason": "condition_macro_f1 0.6000 >= threshold 0.3000",
                "model_uri": "models:/condition-extractor/1",
                "version": "1",
                "mlflow_run_id": "abc",
                "tracking_uri": "sqlite:///x.db",
            },
        ),
    }
    summary = run_summary(tiny_lm_recipe, outputs)
    assert summary["metrics"] == {
        "condition_macro_f1": {"model": 0.6, "baseline": 0.1},
        "json_validity": {"model": 0.9, "baseline": 0.0},
    }
    assert summary["counts"] == {"prepare": {"rows_in": 10, "rows_kept": 9}}
    assert json.loads((tiny_lm_recipe.out / SUMMARY).read_text()) == summary
    lines = summary_lines(summary)
    assert "condition_macro_f1: 0.6000 (baseline 0.1000)" in lines
    assert lines[-2].startswith("gate PASSED")


def test_summary_words_each_paired_comparison(tiny_lm_recipe: Recipe, tmp_path: Path):
    tiny_lm_recipe.out.mkdir(parents=True)
    intervals = {
        "macro_f1": 0.755,
        "macro_f1_ci_low": 0.70,
        "macro_f1_ci_high": 0.80,
        "baseline_macro_f1": 0.737,
        "baseline_macro_f1_ci_low": 0.68,
        "baseline_macro_f1_ci_high": 0.79,
        "macro_f1_diff": 0.018,
        "macro_f1_diff_ci_low": -0.03,
        "macro_f1_diff_ci_high": 0.07,
        "ci_level": 0.95,
    }
    worded = (
        "macro_f1 0.755 vs baseline 0.737: not distinguishable "
        "(difference +0.018, 95% CI [-0.030, +0.070])"
    )
    outputs = {
        "prepare": _stage(tmp_path, "prepare"),
        "evaluate": _stage(tmp_path, "evaluate", metrics=intervals),
        "register": _stage(
            tmp_path,
            "register",
            extra={
                "gate_passed": False,
                "gate_reason": f"macro_f1_diff_ci_low -0.0300 <= 0; {worded}",
                "gate_verdicts": [worded],
                "model_uri": "models:/condition-classifier/2",
                "version": "2",
                "mlflow_run_id": "abc",
            },
        ),
    }
    summary = run_summary(tiny_lm_recipe, outputs)
    assert list(summary["metrics"]) == ["macro_f1"], "intervals are not metrics of their own"
    entry = summary["metrics"]["macro_f1"]
    assert entry["model_ci"] == [0.70, 0.80] and entry["difference_ci"] == [-0.03, 0.07]
    assert entry["verdict"] == "not distinguishable" and entry["text"] == worded
    assert summary["gate_verdicts"] == [worded]
    lines = summary_lines(summary)
    assert lines[0] == (
        "macro_f1: 0.7550 [0.7000, 0.8000] (baseline 0.7370 [0.6800, 0.7900]): "
        "not distinguishable (difference +0.018, 95% CI [-0.030, +0.070])"
    )
    assert any(line.startswith("gate REFUSED") and worded in line for line in lines)


def test_summary_says_what_context_features_added(tiny_lm_recipe: Recipe, tmp_path: Path):
    tiny_lm_recipe.out.mkdir(parents=True)
    key = tiny_lm_recipe.gate.metric
    metrics = {
        key: 0.812,
        f"baseline_{key}": 0.851,
        f"text_only_{key}": 0.762,
        f"{key}_vs_text_only_diff": 0.05,
        f"{key}_vs_text_only_diff_ci_low": -0.003,
        f"{key}_vs_text_only_diff_ci_high": 0.113,
        "ci_level": 0.95,
    }
    register = {
        "gate_passed": True,
        "gate_reason": "ok",
        "model_uri": "models:/m/1",
        "version": "1",
    }
    outputs = {
        "prepare": _stage(tmp_path, "prepare"),
        "evaluate": _stage(tmp_path, "evaluate", metrics=metrics),
        "register": _stage(tmp_path, "register", extra={**register, "mlflow_run_id": "r"}),
    }
    summary = run_summary(tiny_lm_recipe, outputs)
    assert list(summary["metrics"]) == [key], "text-only numbers are not metrics of their own"
    assert f"context features: {key} 0.812 vs text_only 0.762: not distinguishable" in "\n".join(
        summary_lines(summary)
    )
    outputs["evaluate"] = _stage(tmp_path, "evaluate", metrics={key: 0.8, f"baseline_{key}": 0.7})
    assert run_summary(tiny_lm_recipe, outputs)["context_verdict"] is None
