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
