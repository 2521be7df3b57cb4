"""``medops drift`` end to end: a run's prepared data and evaluated answers, a feedback store
of recorded exchanges, the table, drift.json / drift.md and the exit code."""

from __future__ import annotations

import json
import typing
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from medops.cli import main
from medops.recipe import build_recipe
from medops.review.store import DB_ENV, FeedbackStore, store_url
from medops.tasks.causal_lm.recipe import CausalLMRecipe
from tests.conftest import EXTRACTION_RECIPE
from tests.monitor.samples import CLASSES, NEW_WORDS, answers, texts

PATIENT = "Zebulon Quaxley"  # planted in the shifted traffic: it must never be printed
OVERRIDES = ["monitor.drift.min_rows=40", "monitor.drift.permutations=100"]


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def _run(run_dir: Path) -> Path:
    """A finished run as ``medops run`` leaves it: prepared splits, evaluated answers, summary."""
    prepared, evaluated = run_dir / "prepare", run_dir / "evaluate"
    prepared.mkdir(parents=True)
    evaluated.mkdir()
    for split, n in (("train", 200), ("validation", 20), ("test", 60)):
        made = answers(n, seed=len(split))
        rows = [
            {"id": f"{split}-{i}", "text": t, "label": json.loads(a)["condition"]}
            for i, (t, a) in enumerate(zip(texts(n, seed=n), made, strict=True))
        ]
        _jsonl(prepared / f"{split}.jsonl", rows)
    (prepared / "labels.json").write_text(json.dumps(CLASSES))
    test = answers(60, seed=4)
    _jsonl(
        evaluated / "generations.jsonl",
        [{"id": f"test-{i}", "model": a} for i, a in enumerate(test)],
    )
    summary = run_dir / "run-summary.json"
    outputs = {"prepare": str(prepared), "evaluate": str(evaluated)}
    summary.write_text(json.dumps({"outputs": outputs, "model_uri": "models:/extractor/1"}))
    return summary


def _recipe(tmp_path: Path, *extra: str) -> tuple[Path, CausalLMRecipe]:
    raw = yaml.safe_load(EXTRACTION_RECIPE.read_text())
    raw["output_dir"] = str(tmp_path / "run")
    raw["serve"] = {**raw.get("serve", {}), "review_queue": {"enabled": True}}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path, typing.cast(CausalLMRecipe, build_recipe(raw, [*OVERRIDES, *extra]))


def _record(recipe: CausalLMRecipe, shifted: bool) -> None:
    """Exchanges as the server queues them: the task's instruction, then the text."""
    store = FeedbackStore(store_url(recipe))
    inputs = texts(60, seed=99, vocabulary=NEW_WORDS, words=(60, 90)) if shifted else texts(60, 98)
    for text, answer in zip(inputs, answers(60, seed=97), strict=True):
        text = f"{text} {PATIENT}" if shifted else text
        turn = {"role": "user", "content": f"{recipe.lm.instruction}\n\nText:\n{text}"}
        answer = answer.replace("Sertraline", PATIENT) if shifted else answer
        store.enqueue(recipe.serve.model_name, "models:/extractor/1", [turn], answer, timedelta(1))
    store.enqueue("another-model", "models:/other/1", [turn], answer, timedelta(1))


@pytest.fixture(autouse=True)
def _own_store(monkeypatch):
    monkeypatch.delenv(DB_ENV, raising=False)  # the store under the recipe's output_dir


@pytest.mark.parametrize(("shifted", "code", "overall"), [(False, 0, "ok"), (True, 1, "drift")])
def test_drift_report_verdict_exit_code_and_no_text(tmp_path, capsys, shifted, code, overall):
    path, recipe = _recipe(tmp_path)
    _run(recipe.out)
    _record(recipe, shifted)
    out = tmp_path / "report"
    assert main(["drift", str(path), *OVERRIDES, "--out", str(out)]) == code
    printed = capsys.readouterr().out
    report = json.loads((out / "drift.json").read_text())
    assert report["overall"] == overall and f"overall: {overall.upper()}" in printed
    assert report["traffic"] == {"recorded": 60, "by_served_model": {"extractor": 60}}
    assert report["reference"]["label_field"] == "condition"
    found = {s["statistic"]: s for s in report["statistics"]}
    assert all(s["current_rows"] == 60 for s in found.values())
    assert found["input_length_psi"]["reference_rows"] == 200  # the train split
    assert found["answer_length_psi"]["reference_rows"] == 60  # the evaluated answers
    if shifted:
        assert {found[n]["verdict"] for n in ("input_length_psi", "vocabulary_oov")} == {"drift"}
    markdown = (out / "drift.md").read_text()
    assert f"**Overall: {overall}**" in markdown and "| Depression |" in markdown
    for shown in (printed, markdown, json.dumps(report)):
        assert PATIENT.split()[0].casefold() not in shown.casefold()
        assert texts(1, 98)[0].split()[0] not in shown.split()  # no word of an input either


def test_no_traffic_since_is_insufficient_data_and_exit_zero(tmp_path, capsys):
    path, recipe = _recipe(tmp_path)
    summary = _run(tmp_path / "elsewhere")
    _record(recipe, shifted=True)
    argv = ["drift", str(path), *OVERRIDES, "--since", "2999-01-01", "--run-summary", str(summary)]
    assert main(argv) == 0
    report = json.loads((recipe.out / "drift" / "drift.json").read_text())
    assert report["overall"] == "insufficient data" and report["traffic"]["recorded"] == 0
    assert "fewer than monitor.drift.min_rows (40)" in capsys.readouterr().out


def test_prepared_without_evaluated_has_no_answer_statistics(tmp_path, capsys):
    path, recipe = _recipe(tmp_path)
    _run(recipe.out)
    _record(recipe, shifted=False)
    argv = ["drift", str(path), *OVERRIDES, "--prepared", str(recipe.out / "prepare")]
    assert main(argv) == 0
    verdicts = {
        s["statistic"]: s["verdict"]
        for s in json.loads((recipe.out / "drift" / "drift.json").read_text())["statistics"]
    }
    assert verdicts["answer_length_psi"] == verdicts["answer_category_psi"] == "not available"
    assert verdicts["input_length_psi"] == "ok"


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["--since", "last week"], "--since 'last week'"),
        (["--evaluated", "x"], "--evaluated goes with --prepared"),
        (["--run-summary", "missing.json"], "run the pipeline first"),
    ],
)
def test_bad_arguments_are_named(tmp_path, capsys, argv, complaint):
    path, recipe = _recipe(tmp_path)
    _run(recipe.out)
    assert main(["drift", str(path), *argv]) == 2
    assert complaint in capsys.readouterr().err


def test_a_threshold_must_be_positive(tmp_path, capsys):
    path, _ = _recipe(tmp_path)
    assert main(["drift", str(path), "monitor.drift.thresholds.vocabulary_jsd=0"]) == 2
    assert "monitor.drift.thresholds.vocabulary_jsd" in capsys.readouterr().err
