"""Review push and pull against a real Label Studio: only de-identified text goes in, every
submitted review comes back with its lineage, and agreement is computed across reviewers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medops.review.fields import read_result
from medops.review.labelstudio import LabelStudio, ReviewServiceError
from medops.review.pull import pull
from medops.review.push import from_run, project_title, push
from medops.review.report import write_report
from medops.review.store import FeedbackStore, store_url
from tests.review.conftest import MODEL_URI, PLANTED, LabelStudioServer

REVIEWER2_TOKEN = "fedcba9876543210fedcba9876543210fedcba98"


def _answer(verdict: str, answer: str, reason: str = "") -> list[dict[str, object]]:
    result = [
        {
            "from_name": "verdict",
            "to_name": "text",
            "type": "choices",
            "value": {"choices": [verdict]},
        },
        {
            "from_name": "field_answer",
            "to_name": "text",
            "type": "textarea",
            "value": {"text": [answer]},
        },
    ]
    if reason:
        result.append(
            {
                "from_name": "reject_reason",
                "to_name": "text",
                "type": "textarea",
                "value": {"text": [reason]},
            }
        )
    return result


def test_push_sends_only_de_identified_text_and_never_twice(label_studio: LabelStudioServer, run):
    recipe, outputs = run
    client = LabelStudio(label_studio.url, label_studio.token)
    first = push(recipe, from_run(recipe, outputs), client, limit=3)
    again = push(recipe, from_run(recipe, outputs), client, limit=None)
    assert (first["pushed"], again["pushed"], again["already_in_project"]) == (3, 1, 3)
    tasks = client.export(first["project"], with_unlabeled=True)
    everything = json.dumps(tasks)
    for secret in PLANTED:
        assert secret not in everything, "an identifier reached Label Studio"
    assert "[NAME]" in everything, "the text reviewers see is the de-identified one"
    assert {t["data"]["model_uri"] for t in tasks} == {MODEL_URI} and first["model_uris"] == [
        MODEL_URI
    ]
    # the form is pre-filled with the version's answer
    predictions = client._call("GET", "/api/predictions", params={"task": tasks[0]["id"]})
    assert predictions[0]["model_version"] == MODEL_URI
    assert read_result(predictions[0]["result"], [])["verdict"] == ""


def test_pull_keeps_every_review_with_its_lineage_and_agreement(
    label_studio: LabelStudioServer, run, tmp_path: Path
):
    recipe, outputs = run
    admin = LabelStudio(label_studio.url, label_studio.token)
    project = push(recipe, from_run(recipe, outputs), admin, limit=None)["project"]
    label_studio.add_reviewer("reviewer2@medops.test", "Rev2-review-pass", REVIEWER2_TOKEN)
    second = LabelStudio(label_studio.url, REVIEWER2_TOKEN)
    tasks = {t["data"]["medops_id"]: t for t in admin.export(project, with_unlabeled=True)}
    a, b = tasks["phi0"], tasks["phi1"]
    proposed = b["data"]["medops_answer"]["answer"]
    reviews = [
        (admin, a, _answer("correct", "250 mg twice a day."), 20.0, "correct"),
        (second, a, _answer("correct", "250 mg twice a day."), 30.0, "correct"),
        (admin, b, _answer("accept", proposed), 5.0, "accept"),
        (second, b, _answer("reject", proposed, "wrong dose"), 9.0, "reject"),
    ]
    made = {
        who.annotate(task["id"], result, seconds): (task["data"]["medops_id"], verdict)
        for who, task, result, seconds, verdict in reviews
    }
    manifest = pull(recipe, admin, tmp_path / "feedback-1")
    rows = [
        json.loads(line)
        for line in (tmp_path / "feedback-1" / "feedback.jsonl").read_text().splitlines()
    ]
    assert {r["ls_annotation_id"]: (r["id"], r["verdict"]) for r in rows} == made
    assert {r["model_uri"] for r in rows} == {MODEL_URI}
    assert {r["ls_task_id"] for r in rows} == {a["id"], b["id"]}
    assert len({r["reviewer"] for r in rows}) == 2
    corrected = next(r for r in rows if r["id"] == "phi0")
    assert corrected["fields"]["answer"] == {
        "model": a["data"]["medops_answer"]["answer"],
        "reviewed": "250 mg twice a day.",
        "accepted": False,
    }
    summary = manifest.extra["summary"]
    assert summary["acceptance"] == {"answer": 0.5}
    assert summary["reject_reasons"] == {"wrong dose": 1}
    assert summary["items_reviewed_twice"] == 2 and summary["verdict_agreement"] == 0.5
    card = (tmp_path / "feedback-1" / "FEEDBACK_CARD.md").read_text()
    assert "| answer | 0.50 |" in card and "| wrong dose | 1 |" in card
    for secret in PLANTED:
        assert secret not in (tmp_path / "feedback-1" / "feedback.jsonl").read_text()
    stored = FeedbackStore(store_url(recipe)).reviews(project_title(recipe))
    assert sorted(r["ls_annotation_id"] for r in stored) == sorted(made)
    page = write_report(project_title(recipe), stored, tmp_path / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 3
    assert f"<td>{MODEL_URI}</td><td>2</td><td>0.50</td>" in page


def test_a_bad_token_is_a_clear_error_without_the_body(label_studio: LabelStudioServer, run):
    recipe, outputs = run
    with pytest.raises(ReviewServiceError, match=r"HTTP 401 \(check the token\)"):
        push(
            recipe, from_run(recipe, outputs), LabelStudio(label_studio.url, "not-a-token"), limit=1
        )
