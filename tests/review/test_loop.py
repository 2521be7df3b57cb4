"""One turn of the loop: reviewers correct a version's answers, the corrections join the
next training set, and the gate moves the alias only if the retrained model beats the
champion scored on the same held-out conversations in the same run."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow

from medops.registry.tracking import tracking_uri
from medops.review.labelstudio import LabelStudio
from medops.review.pull import pull
from medops.review.push import RunOutputs, from_run, push
from medops.stages import run_stage
from tests.review.conftest import LabelStudioServer
from tests.tasks.instruct.conftest import instruct_recipe, qa_records, write_jsonl

DRUGS = ["amoxicillin", "ibuprofen", "metformin", "lisinopril"]
GATE = (
    "gate.min_value=0.0",
    "gate.not_below_baseline=false",
    "gate.significant=false",
    "gate.against_champion=true",
)


def _pipeline(recipe, root: Path) -> dict[str, object]:
    manifests = {}
    wiring = {
        "prepare": {},
        "train": {"prepared": "prepare"},
        "evaluate": {"prepared": "prepare", "trained": "train"},
        "register": {"prepared": "prepare", "trained": "train", "evaluated": "evaluate"},
    }
    for name, inputs in wiring.items():
        manifests[name] = run_stage(
            name, recipe, root / name, {k: root / v for k, v in inputs.items()}
        )
    return manifests


def test_corrections_retrain_and_the_gate_compares_with_the_champion(
    label_studio: LabelStudioServer, tmp_path: Path, tiny_lm_dir: Path
):
    train = write_jsonl(tmp_path / "train.jsonl", qa_records("t", 16))
    first_test = write_jsonl(tmp_path / "test1.jsonl", qa_records("r", 4))
    sources = [{"uri": str(train), "role": "train"}, {"uri": str(first_test), "role": "test"}]
    recipe = instruct_recipe(tmp_path, tiny_lm_dir, sources, "name=review-loop", *GATE)
    first = _pipeline(recipe, tmp_path / "run1")
    assert first["evaluate"].metrics["champion_exists"] == 0.0, "no champion yet"
    assert first["register"].extra["gate_passed"]
    champion = first["register"].extra["model_uri"]

    client = LabelStudio(label_studio.url, label_studio.token)
    run = RunOutputs(tmp_path / "run1" / "prepare", tmp_path / "run1" / "evaluate", champion)
    project = push(recipe, from_run(recipe, run), client, limit=None)["project"]
    for task in client.export(project, with_unlabeled=True):
        number = int(task["data"]["medops_id"].removeprefix("r"))
        verdict = "reject" if number == 3 else "correct"
        result = [
            {"from_name": "verdict", "to_name": "text", "type": "choices",
             "value": {"choices": [verdict]}},
            {"from_name": "field_answer", "to_name": "text", "type": "textarea",
             "value": {"text": [DRUGS[number % 4]]}},
        ]  # fmt: skip
        client.annotate(task["id"], result, 10.0)
    feedback = tmp_path / "feedback-1"
    pull(recipe, client, feedback)

    second_test = write_jsonl(tmp_path / "test2.jsonl", qa_records("s", 4))
    sources = [
        {"uri": str(train), "role": "train"},
        {"uri": str(feedback / "feedback.jsonl"), "role": "train"},
        {"uri": str(second_test), "role": "test"},
    ]
    retrain = instruct_recipe(tmp_path, tiny_lm_dir, sources, "name=review-loop", *GATE)
    second = _pipeline(retrain, tmp_path / "run2")

    prepared = second["prepare"]
    assert prepared.extra["sources"]["feedback.jsonl"]["format"] == "feedback"
    assert prepared.counts["quarantined_rejected_in_review"] == 1
    assert prepared.counts["hard_examples"] == 1
    kept = [
        json.loads(line)
        for split in ("train", "validation")
        for line in (tmp_path / "run2" / "prepare" / f"{split}.jsonl").read_text().splitlines()
    ]
    corrected = next(r for r in kept if r["id"] == "r0")
    assert corrected["messages"][-1] == {"role": "assistant", "content": DRUGS[0]}

    metrics = second["evaluate"].metrics
    assert metrics["champion_exists"] == 1.0
    assert "champion_rouge_l" in metrics and "rouge_l_vs_champion_diff_ci_low" in metrics
    decision = second["register"].extra
    better = metrics["rouge_l"] > metrics["champion_rouge_l"]
    assert decision["gate_passed"] == better, decision["gate_reason"]
    uri = tracking_uri(retrain)
    alias = mlflow.MlflowClient(uri, uri).get_model_version_by_alias(
        retrain.registry.model_name, "champion"
    )
    expected = decision["version"] if better else champion.rsplit("/", 1)[1]
    assert str(alias.version) == expected
