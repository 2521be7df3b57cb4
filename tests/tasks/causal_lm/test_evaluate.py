"""The causal-LM evaluate stage and register on the tiny Llama (real generation, real MLflow)."""

import json
import shutil
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from sklearn.metrics import f1_score

from medops.evaluate.generation_metrics import normalise, parse_answer, rouge_l
from medops.manifest import Manifest, write_manifest
from medops.recipe import Recipe
from medops.registry.tracking import open_run, tracking_uri
from medops.stages import run_stage
from medops.tasks.causal_lm.evaluate import _shown

PLANTED = "Zebulon Quarterfield"


@pytest.fixture
def lm_trained_dir(tiny_lm_recipe: Recipe, tiny_lm_dir: Path, tmp_path: Path) -> Path:
    """A train-stage directory whose merged model is the (untrained) tiny Llama."""
    directory = tmp_path / "trained"
    directory.mkdir()
    shutil.copytree(tiny_lm_dir, directory / "model")
    manifest = Manifest(stage="train", recipe_hash=tiny_lm_recipe.content_hash())
    manifest.extra = {
        "mlflow_run_id": open_run(tiny_lm_recipe, "test-train"),
        "fields": ["drug", "condition", "sentiment"],
    }
    write_manifest(manifest, directory)
    return directory


@pytest.fixture
def evaluated(tiny_lm_recipe, extraction_prepared_dir, lm_trained_dir, tmp_path):
    test_file = extraction_prepared_dir / "test.jsonl"
    rows = [json.loads(line) for line in test_file.read_text().splitlines()]
    rows[0]["text"] = f"Seen by Dr {PLANTED} on the ward."
    test_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "evaluated"
    inputs = {"prepared": extraction_prepared_dir, "trained": lm_trained_dir}
    return run_stage("evaluate", tiny_lm_recipe, out, inputs), out


def test_scores_model_and_base_on_the_same_rows(evaluated, extraction_prepared_dir):
    manifest, out = evaluated
    assert manifest.counts == {"test": 9, "test_scored": 9, "test_skipped": 0}
    generations = [json.loads(x) for x in (out / "generations.jsonl").read_text().splitlines()]
    assert len(generations) == 9 and set(generations[0]) == {"id", "gold", "model", "baseline"}
    test = [
        json.loads(x) for x in (extraction_prepared_dir / "test.jsonl").read_text().splitlines()
    ]
    assert [g["id"] for g in generations] == [r["id"] for r in test]
    assert [g["gold"]["condition"] for g in generations] == [r["label"] for r in test]
    assert [g["gold"]["drug"] for g in generations] == [r["fields"]["drug"] for r in test]
    # the manifest's numbers are those of the written generations, recomputed row by row
    classes = json.loads((extraction_prepared_dir / "labels.json").read_text())
    lookup = {normalise(name): name for name in classes}
    for side, prefix in (("model", ""), ("baseline", "baseline_")):
        answers = [parse_answer(g[side]) for g in generations]
        drug = [
            a is not None and "drug" in a and normalise(a["drug"]) == normalise(g["gold"]["drug"])
            for a, g in zip(answers, generations, strict=True)
        ]
        rouge = [rouge_l(g[side], json.dumps(g["gold"], ensure_ascii=False)) for g in generations]
        recomputed = {
            "json_validity": sum(a is not None for a in answers) / 9,
            "exact_match_drug": sum(drug) / 9,
            "rouge_l": sum(rouge) / 9,
            "condition_macro_f1": f1_score(
                [g["gold"]["condition"] for g in generations],
                [lookup.get(normalise((a or {}).get("condition", "")), "?") for a in answers],
                labels=classes,
                average="macro",
                zero_division=0,
            ),
        }
        for key, value in recomputed.items():
            assert manifest.metrics[f"{prefix}{key}"] == pytest.approx(value), (side, key)
    # model and baseline are the same weights here: the same greedy answers
    assert [g["model"] for g in generations] == [g["baseline"] for g in generations]
    assert (out / "confusion.png").read_bytes()[:4] == b"\x89PNG"
    report = (out / "report.html").read_text()
    assert "sample generations" in report
    for name in ("report.html", "metrics.json", "manifest.json"):
        assert PLANTED not in (out / name).read_text()


def test_the_report_shows_parsed_answers_never_free_text():
    echo = f"The patient {PLANTED} has acne"
    assert _shown(echo) == f"(not JSON, {len(echo)} characters)"
    shown = _shown('Sure: {"drug": "Retin-A", "condition": "Acne"} done')
    assert json.loads(shown) == {"drug": "Retin-A", "condition": "Acne"}


def test_register_logs_a_generating_pyfunc(
    evaluated, tiny_lm_recipe, extraction_prepared_dir, lm_trained_dir, tmp_path
):
    recipe = tiny_lm_recipe.model_copy(
        update={"gate": tiny_lm_recipe.gate.model_copy(update={"min_value": 0.0})}
    )
    out = tmp_path / "registered"
    inputs = {
        "prepared": extraction_prepared_dir,
        "trained": lm_trained_dir,
        "evaluated": evaluated[1],
    }
    run_stage("register", recipe, out, inputs)
    decision = json.loads((out / "decision.json").read_text())
    assert decision["passed"], decision["reason"]  # equal to its own baseline: not below
    mlflow.set_tracking_uri(tracking_uri(recipe))
    model = mlflow.pyfunc.load_model(f"models:/{recipe.registry.model_name}@champion")
    predicted = model.predict(pd.DataFrame({"text": ["My skin cleared up.", "Back ache."]}))
    assert list(predicted.columns) == ["answer", "json_valid", "drug", "condition", "sentiment"]
    assert len(predicted) == 2 and predicted["json_valid"].dtype == bool
