"""Integration: the whole pipeline through kfp.local on real reviews, then the real KServe
server answering. The classifier flow runs on the real MiniLM and is asked v1 and v2; the
generative flow (``make demo``) runs on a tiny random Llama with SmolLM2's real tokenizer and
is asked through the official OpenAI client, v1 and v2. Small samples keep each to minutes;
every figure the summary states is recomputed from the stage's own outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from sklearn.metrics import accuracy_score, f1_score

from medops.demo import run_demo
from medops.evaluate.generation_metrics import normalise, parse_answer
from medops.recipe import build_recipe
from tests.conftest import EXTRACTION_RECIPE, demo_raw
from tests.samples import KEEP, sample_reviews


@pytest.mark.integration
def test_demo_end_to_end_on_a_real_sample(tmp_path: Path) -> None:
    raw = demo_raw()
    raw["data"]["sources"] = [
        {
            "uri": str(sample_reviews("drugsComTrain.tsv", 14, tmp_path / "train.tsv")),
            "role": "train",
        },
        {"uri": str(sample_reviews("drugsComTest.tsv", 6, tmp_path / "test.tsv")), "role": "test"},
    ]
    recipe = build_recipe(
        raw,
        [
            f"output_dir={tmp_path / 'run'}",
            "data.top_k_classes=3",
            "data.validation_fraction=0.2",
            "model.max_length=64",
            "train.epochs=1",
            "train.batch_size=8",
            "gate.min_value=0.0",
            "gate.not_below_baseline=false",
            "serve.port=18080",
        ],
    )
    summary = run_demo(recipe)

    assert summary["rows_in"] == summary["rows_kept"] + summary["rows_quarantined"]
    assert summary["rows_in"] == 14 * 4 + 6 * 4
    assert summary["gate_passed"] is True
    assert summary["task"] == "classification"
    assert summary["model_uri"] == "models:/condition-classifier@champion"
    # the summary's numbers are the evaluate stage's, recomputed from its predictions
    evaluated = Path(summary["report"]).parent
    rows = [json.loads(x) for x in (evaluated / "predictions.jsonl").read_text().splitlines()]
    test_split = next((tmp_path / "run").rglob("test.jsonl")).read_text().splitlines()
    assert [r["id"] for r in rows] == [json.loads(line)["id"] for line in test_split]
    labels, predicted = [r["label"] for r in rows], [r["predicted"] for r in rows]
    assert summary["accuracy"] == pytest.approx(accuracy_score(labels, predicted))
    metrics = json.loads((evaluated / "metrics.json").read_text())
    assert sorted(metrics["classes"]) == sorted(KEEP)
    assert summary["macro_f1"] == pytest.approx(
        f1_score(labels, predicted, labels=metrics["classes"], average="macro", zero_division=0)
    )
    manifest = json.loads((evaluated / "manifest.json").read_text())["metrics"]
    for name in ("macro_f1", "accuracy"):
        assert summary[name] == manifest[name] == metrics["model"]["summary"][name]
        baseline = metrics["baseline"]["summary"][name]
        assert summary[f"baseline_{name}"] == manifest[f"baseline_{name}"] == baseline
    predictions = summary["v1_response"]["predictions"]
    assert len(predictions) == 2
    for answer in predictions:
        assert answer["condition"] in KEEP
        assert set(answer["probabilities"]) == set(KEEP)
        assert abs(sum(answer["probabilities"].values()) - 1.0) < 1e-4
    outputs = {o["name"]: o for o in summary["v2_response"]["outputs"]}
    assert outputs["probabilities"]["shape"] == [2, 3]
    assert all(c in KEEP for c in outputs["condition"]["data"])

    written = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert written["macro_f1"] == summary["macro_f1"]
    test_texts = [
        json.loads(line)["text"]
        for line in (next((tmp_path / "run").rglob("test.jsonl"))).read_text().splitlines()
    ]
    dumped = json.dumps(written)
    assert not any(t in dumped for t in test_texts), "the summary must not carry record text"


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _micro_field_f1(answers: list[dict | None], golds: list[dict], fields: list[str]) -> float:
    """Field-level F1 over every field slot, counted from scratch."""
    correct = said = gold = 0
    for answer, truth in zip(answers, golds, strict=True):
        for field in fields:
            value = normalise((answer or {}).get(field, ""))
            said += bool(value)
            gold += bool(normalise(truth[field]))
            correct += bool(value) and value == normalise(truth[field])
    precision, recall = (correct / said if said else 0.0), correct / gold
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


@pytest.mark.integration
def test_generative_demo_end_to_end_on_a_real_sample(tmp_path: Path, tiny_lm_dir: Path) -> None:
    """`make demo`'s flow: prepare, LoRA on Ray Train, evaluate vs zero- and few-shot base,
    register and gate, serve, then the OpenAI client, v1 and v2 on one held-out review."""
    raw = yaml.safe_load(EXTRACTION_RECIPE.read_text())
    raw["data"]["sources"] = [
        {
            "uri": str(sample_reviews("drugsComTrain.tsv", 14, tmp_path / "train.tsv")),
            "role": "train",
        },
        {"uri": str(sample_reviews("drugsComTest.tsv", 6, tmp_path / "test.tsv")), "role": "test"},
    ]
    recipe = build_recipe(
        raw,
        [
            f"output_dir={tmp_path / 'run'}",
            f"model.base={tiny_lm_dir}",
            "data.top_k_classes=3",
            "data.validation_fraction=0.2",
            "model.max_length=256",
            "train.max_steps=2",
            "lm.max_new_tokens=8",
            "lm.eval_limit=12",
            "lm.few_shot=2",
            "gate.min_value=0.0",
            "gate.not_below_baseline=false",
            "gate.also_not_below_baseline=[]",
            "serve.port=18081",
        ],
    )
    summary = run_demo(recipe)

    assert summary["task"] == "causal-lm"
    assert summary["rows_in"] == summary["rows_kept"] + summary["rows_quarantined"]
    assert summary["gate_passed"] is True
    assert summary["model_uri"] == "models:/condition-extractor@champion"
    assert summary["stage_seconds"]["train"] > 0 and summary["serve_seconds"]["ready"] > 0
    evaluated = Path(summary["report"]).parent
    generations = _lines(evaluated / "generations.jsonl")
    test_rows = _lines(next((tmp_path / "run").rglob("prepared/test.jsonl")))
    assert [g["id"] for g in generations] == [r["id"] for r in test_rows][:12]
    assert summary["test_scored"] == len(generations) == 12
    # shots come from the train split, never from the rows they are scored on
    train_ids = {r["id"] for r in _lines(next((tmp_path / "run").rglob("prepared/train.jsonl")))}
    manifest = json.loads((evaluated / "manifest.json").read_text())
    assert len(manifest["extra"]["fewshot_ids"]) == 2
    assert set(manifest["extra"]["fewshot_ids"]) <= train_ids

    classes = json.loads((evaluated / "metrics.json").read_text())["classes"]
    lookup = {normalise(c): c for c in classes}
    golds = [g["gold"] for g in generations]
    fields = ["drug", "condition", "sentiment"]
    for side, prefix in (("model", ""), ("baseline", "baseline_"), ("fewshot", "fewshot_")):
        answers = [parse_answer(g[side]) for g in generations]
        predicted = [lookup.get(normalise((a or {}).get("condition", "")), "?") for a in answers]
        truth = [g["condition"] for g in golds]
        assert summary[f"{prefix}macro_f1"] == pytest.approx(
            f1_score(truth, predicted, labels=classes, average="macro", zero_division=0)
        ), side
        assert summary[f"{prefix}accuracy"] == pytest.approx(accuracy_score(truth, predicted))
        valid = sum(a is not None for a in answers) / len(answers)
        assert summary[f"{prefix}json_validity"] == pytest.approx(valid)
        assert summary[f"{prefix}field_f1"] == pytest.approx(
            _micro_field_f1(answers, golds, fields)
        )
        assert set(summary["field_f1_per_field"]) == set(fields)
        assert summary["metrics"][f"{prefix}json_validity"] == summary[f"{prefix}json_validity"]

    # the chat route answers the evaluation prompt as v1 does (greedy, the same prompt)
    (row,) = summary["request_rows"]
    assert row["id"] in {r["id"] for r in test_rows}
    (v1,) = summary["v1_response"]["predictions"]
    assert summary["chat_response"]["model"] == recipe.serve.model_name
    assert summary["chat_answer"] == summary["chat_response"]["choices"][0]["message"]["content"]
    assert summary["chat_answer"] == v1["answer"]
    assert v1["json_valid"] == (parse_answer(v1["answer"]) is not None)
    assert set(v1["fields"]) == set(fields)
    outputs = {o["name"]: o for o in summary["v2_response"]["outputs"]}
    assert outputs["answer"]["data"] == [v1["answer"]]

    written = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert written["fewshot_field_f1"] == summary["fewshot_field_f1"]
    dumped = json.dumps(written)
    assert not any(r["text"] in dumped for r in test_rows), "the summary must not carry text"
