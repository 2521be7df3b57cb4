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
from medops.registry.gate import decide
from medops.registry.tags import PRIVACY_RUN_TAG
from medops.registry.tracking import client, open_run, tracking_uri
from medops.stages import run_stage
from medops.tasks.causal_lm.evaluate import (
    _shown,
    few_shot_messages,
    few_shot_rows,
    field_prf,
)
from medops.tasks.causal_lm.examples import prompt_messages

PLANTED = "Zebulon Quarterfield"


@pytest.fixture
def lm_trained_dir(tiny_lm_recipe: Recipe, tiny_lm_dir: Path, tmp_path: Path) -> Path:
    """A train-stage directory whose merged model is the (untrained) tiny Llama."""
    directory = tmp_path / "trained"
    directory.mkdir()
    shutil.copytree(tiny_lm_dir, directory / "model")
    manifest = Manifest(stage="train", recipe_hash=tiny_lm_recipe.content_hash())
    run_id = open_run(tiny_lm_recipe, "test-train")
    # the train stage's privacy audit verdict, which approval requires (tests/privacy)
    client(tiny_lm_recipe).set_tag(run_id, PRIVACY_RUN_TAG, "passed")
    manifest.extra = {"mlflow_run_id": run_id, "fields": ["drug", "condition", "sentiment"]}
    write_manifest(manifest, directory)
    return directory


def _with_lm(recipe: Recipe, **changes) -> Recipe:
    lm = recipe.lm.model_copy(update=changes)  # type: ignore[attr-defined]
    return recipe.model_copy(update={"lm": lm})


def _plant(prepared: Path, split: str) -> None:
    """A name in the first row of ``split``: it must never reach the stage's outputs."""
    path = prepared / f"{split}.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[0]["text"] = f"Seen by Dr {PLANTED} on the ward."
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture
def evaluated(tiny_lm_recipe, extraction_prepared_dir, lm_trained_dir, tmp_path):
    _plant(extraction_prepared_dir, "test")
    out = tmp_path / "evaluated"
    inputs = {"prepared": extraction_prepared_dir, "trained": lm_trained_dir}
    return run_stage("evaluate", tiny_lm_recipe, out, inputs), out


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_scores_model_and_base_on_the_same_rows(evaluated, extraction_prepared_dir, tiny_lm_recipe):
    manifest, out = evaluated
    assert manifest.counts == {"test": 9, "test_scored": 9, "test_skipped": 0, "few_shot": 0}
    generations = _rows(out / "generations.jsonl")
    assert len(generations) == 9 and set(generations[0]) == {"id", "gold", "model", "baseline"}
    assert manifest.counts["few_shot"] == 0 and not any(
        k.startswith("fewshot_") for k in manifest.metrics
    )
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
    # so every paired difference is exactly 0, and the intervals say so: not distinguishable
    for name in ("condition_macro_f1", "json_validity", "field_f1", "field_precision_drug"):
        for key in (name, f"baseline_{name}"):
            low, high = manifest.metrics[f"{key}_ci_low"], manifest.metrics[f"{key}_ci_high"]
            assert low <= manifest.metrics[key] <= high, key
        diff = [manifest.metrics[f"{name}_diff{s}"] for s in ("", "_ci_low", "_ci_high")]
        assert diff == [0.0, 0.0, 0.0], name
    language = json.loads((out / "metrics.json").read_text())["slices"]["language"]
    assert language["en"]["rows"] == 9 and language["en"]["small"]
    gate_metric = tiny_lm_recipe.gate.metric
    assert manifest.metrics[f"slice_language_en_{gate_metric}"] == pytest.approx(
        manifest.metrics[gate_metric]
    )
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


def _recomputed_prf(answers: list[dict | None], golds: list[dict], field: str) -> tuple:
    said = [normalise((a or {}).get(field, "")) for a in answers]
    truth = [normalise(g[field]) for g in golds]
    correct = sum(bool(s) and s == t for s, t in zip(said, truth, strict=True))
    return correct, sum(map(bool, said)), sum(map(bool, truth))


def test_field_prf_counts_answered_fields_for_precision():
    golds = [
        {"drug": "Tramadol", "condition": "Pain"},
        {"drug": "Retin-A", "condition": "Acne"},
        {"drug": "Sertraline", "condition": "Depression"},
        {"drug": "Tramadol", "condition": "Pain"},
    ]
    generations = [
        '{"drug": "tramadol.", "condition": "Pain"}',  # both right after normalise
        '{"drug": "", "condition": "Depression"}',  # drug abstained, condition wrong
        "I think this is about depression.",  # not JSON: nothing predicted
        '{"condition": "pain"}',  # drug missing
    ]
    scores = field_prf(generations, golds, ["drug", "condition"])
    # drug: 1 correct of 1 predicted, 4 gold; condition: 2 correct of 3 predicted, 4 gold
    assert scores["field_precision_drug"] == 1.0
    assert scores["field_recall_drug"] == pytest.approx(1 / 4)
    assert scores["field_f1_drug"] == pytest.approx(2 * 1.0 * 0.25 / 1.25)
    assert scores["field_precision_condition"] == pytest.approx(2 / 3)
    assert scores["field_recall_condition"] == pytest.approx(2 / 4)
    assert scores["field_precision"] == pytest.approx(3 / 4)  # micro: 3 correct of 4 said
    assert scores["field_recall"] == pytest.approx(3 / 8)
    assert scores["field_f1"] == pytest.approx(2 * 0.75 * 0.375 / 1.125)
    assert field_prf(["nothing"], golds[:1], ["drug"])["field_precision_drug"] == 0.0


def test_few_shot_rows_are_deterministic_train_rows_one_label_each(
    tiny_lm_recipe, extraction_prepared_dir
):
    recipe = _with_lm(tiny_lm_recipe, few_shot=4)
    train = _rows(extraction_prepared_dir / "train.jsonl")
    classes = json.loads((extraction_prepared_dir / "labels.json").read_text())
    shots = few_shot_rows(train, recipe, classes)
    assert few_shot_rows(list(reversed(train)), recipe, classes) == shots  # order-free
    assert len(shots) == 4
    # one label per shot before any label repeats, in the classes' order, shortest first
    assert [s["label"] for s in shots] == [*classes, classes[0]]
    for shot in shots[:3]:
        same = [r for r in train if r["label"] == shot["label"]]
        assert len(shot["text"]) == min(len(r["text"]) for r in same)
    assert few_shot_rows(train, _with_lm(recipe, few_shot=0), classes) == []


def test_few_shot_messages_are_worked_examples_then_the_question(tiny_lm_recipe):
    recipe = _with_lm(tiny_lm_recipe, few_shot=1)
    shot = {"id": "train:1", "text": "pimples", "label": "Acne"}
    shot["fields"] = {"drug": "Retin-A", "sentiment": "positive"}  # type: ignore[assignment]
    messages = few_shot_messages([shot], {"id": "test:1", "text": "back ache"}, recipe)
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[0] == prompt_messages("pimples", recipe.lm)[0]
    assert json.loads(messages[1]["content"]) == {
        "drug": "Retin-A",
        "condition": "Acne",
        "sentiment": "positive",
    }
    assert messages[2:] == prompt_messages("back ache", recipe.lm)


def test_a_rows_context_is_a_line_of_its_prompt_in_training_and_few_shot(tiny_lm_recipe):
    recipe = _with_lm(tiny_lm_recipe, few_shot=1)
    context = {"reviews_before": 4, "mean_rating_before": None}
    shot = {"id": "train:1", "text": "pimples", "label": "Acne", "context": context}
    shot["fields"] = {"drug": "Retin-A", "sentiment": "positive"}  # type: ignore[assignment]
    question = {"id": "test:1", "text": "back ache", "context": {"reviews_before": 0}}
    messages = few_shot_messages([shot], question, recipe)
    first, last = messages[0]["content"], messages[2]["content"]
    assert "Context known before this text: reviews_before: 4; mean_rating_before: unknown" in first
    assert first.index("Context known") < first.index("Text:\npimples")
    assert "reviews_before: 0" in last and last.endswith("Text:\nback ache")
    assert "Context known" not in prompt_messages("back ache", recipe.lm)[0]["content"]


def test_few_shot_baseline_is_scored_on_the_same_rows(
    tiny_lm_recipe, extraction_prepared_dir, lm_trained_dir, tmp_path
):
    recipe = _with_lm(tiny_lm_recipe, few_shot=2)
    _plant(extraction_prepared_dir, "train")  # a shot's text is a prompt, never an output
    out = tmp_path / "evaluated-fewshot"
    inputs = {"prepared": extraction_prepared_dir, "trained": lm_trained_dir}
    manifest = run_stage("evaluate", recipe, out, inputs)

    train_ids = {r["id"] for r in _rows(extraction_prepared_dir / "train.jsonl")}
    shot_ids = manifest.extra["fewshot_ids"]
    assert len(shot_ids) == 2 and set(shot_ids) <= train_ids
    assert manifest.counts["few_shot"] == 2
    generations = _rows(out / "generations.jsonl")
    assert set(generations[0]) == {"id", "gold", "model", "baseline", "fewshot"}
    golds = [g["gold"] for g in generations]
    for side, prefix in (("model", ""), ("baseline", "baseline_"), ("fewshot", "fewshot_")):
        answers = [parse_answer(g[side]) for g in generations]
        valid = sum(a is not None for a in answers) / len(answers)
        assert manifest.metrics[f"{prefix}json_validity"] == pytest.approx(valid)
        totals = [0, 0, 0]
        for field in ("drug", "condition", "sentiment"):
            correct, said, gold = _recomputed_prf(answers, golds, field)
            totals = [a + b for a, b in zip(totals, (correct, said, gold), strict=True)]
            precision = correct / said if said else 0.0
            assert manifest.metrics[f"{prefix}field_precision_{field}"] == pytest.approx(precision)
            assert manifest.metrics[f"{prefix}field_recall_{field}"] == pytest.approx(
                correct / gold
            )
        assert manifest.metrics[f"{prefix}field_recall"] == pytest.approx(totals[0] / totals[2])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["fewshot_ids"] == shot_ids
    assert (
        metrics["fewshot"]["summary"]["json_validity"] == manifest.metrics["fewshot_json_validity"]
    )
    report = (out / "report.html").read_text()
    assert "few-shot base (2-shot)" in report and "<th>few-shot base</th>" in report
    for name in ("report.html", "metrics.json", "manifest.json", "generations.jsonl"):
        assert PLANTED not in (out / name).read_text()


def test_rows_with_context_are_also_scored_without_it(
    tiny_lm_recipe, extraction_prepared_dir, lm_trained_dir, tmp_path
):
    path = extraction_prepared_dir / "test.jsonl"
    rows = _rows(path)
    for row in rows:
        row["context"] = {"reviews_before": 2, "top_condition_before": "Acne"}
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "evaluated-context"
    inputs = {"prepared": extraction_prepared_dir, "trained": lm_trained_dir}
    manifest = run_stage("evaluate", tiny_lm_recipe, out, inputs)
    generations = _rows(out / "generations.jsonl")
    assert set(generations[0]) == {"id", "gold", "model", "baseline", "text_only"}
    metric = tiny_lm_recipe.gate.metric
    difference = manifest.metrics[f"{metric}_vs_text_only_diff"]
    assert difference == pytest.approx(
        manifest.metrics[metric] - manifest.metrics[f"text_only_{metric}"]
    )
    assert "fine-tuned, no context" in (out / "report.html").read_text()


def _other_weights(trained: Path, out: Path) -> Path:
    """A second candidate: the tiny Llama with every weight moved by seeded noise."""
    import torch
    from transformers import AutoModelForCausalLM

    shutil.copytree(trained / "model", out / "model")
    model = AutoModelForCausalLM.from_pretrained(out / "model")
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for weight in model.parameters():
            weight.add_(torch.randn(weight.shape, generator=generator))
    model.save_pretrained(out / "model")
    return out


def test_the_registered_champion_answers_the_same_prompts_paired(
    tiny_lm_recipe, extraction_prepared_dir, lm_trained_dir, tmp_path
):
    gate = tiny_lm_recipe.gate.model_copy(
        update={"min_value": 0.0, "against_champion": True, "interval_against": ["champion"]}
    )
    recipe = tiny_lm_recipe.model_copy(update={"gate": gate})
    _plant(extraction_prepared_dir, "test")
    inputs = {"prepared": extraction_prepared_dir, "trained": lm_trained_dir}
    first = tmp_path / "evaluated-first"
    metrics = run_stage("evaluate", recipe, first, inputs).metrics
    assert metrics["champion_exists"] == 0.0, "no version holds the alias yet"
    assert "champion" not in _rows(first / "generations.jsonl")[0]
    run_stage("register", recipe, tmp_path / "registered", {**inputs, "evaluated": first})
    decision = json.loads((tmp_path / "registered" / "decision.json").read_text())
    assert decision["passed"] and decision["alias"] == "champion", decision["reason"]
    assert [c["against"] for c in decision["comparisons"]] == ["baseline"]

    out = tmp_path / "evaluated-second"
    second = _other_weights(lm_trained_dir, tmp_path / "second")
    manifest = run_stage("evaluate", recipe, out, {**inputs, "trained": second})
    metrics = manifest.metrics
    assert metrics["champion_exists"] == 1.0
    # the champion is the registered first model: row for row, the first run's answers
    earlier, generations = _rows(first / "generations.jsonl"), _rows(out / "generations.jsonl")
    assert [g["id"] for g in generations] == [g["id"] for g in earlier]
    assert [g["champion"] for g in generations] == [g["model"] for g in earlier]
    assert [g["model"] for g in generations] != [g["champion"] for g in generations]
    earlier_metrics = json.loads((first / "manifest.json").read_text())["metrics"]
    for name in (recipe.gate.metric, "json_validity", "field_f1", "rouge_l"):
        assert metrics[f"champion_{name}"] == earlier_metrics[name], name
        difference = metrics[f"{name}_vs_champion_diff"]
        assert difference == pytest.approx(metrics[name] - metrics[f"champion_{name}"])
        low, high = (metrics[f"{name}_vs_champion_diff_ci_{end}"] for end in ("low", "high"))
        assert low <= difference <= high, name
    decision = decide(recipe.gate, metrics)
    assert [c.against for c in decision.comparisons] == ["baseline", "champion"]
    assert decision.comparisons[1].other == metrics[f"champion_{recipe.gate.metric}"]
    assert "<th>current champion</th>" in (out / "report.html").read_text()
    for name in ("report.html", "metrics.json", "manifest.json", "generations.jsonl"):
        assert PLANTED not in (out / name).read_text()
