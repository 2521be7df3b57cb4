from __future__ import annotations

import math
import subprocess
import sys

import pytest

from medops.deid.detect import detect_phi
from medops.deid.span_classifier import (
    THRESHOLD,
    SpanClassifierRecognizer,
    Weights,
    fit,
    load_weights,
)
from medops.recipe import Deid
from tests.paths import ROOT

ALL = ["PERSON", "LOCATION", "ORGANIZATION", "DATE_TIME", "ID"]
# a run after "at" is an organisation, after "in" a place; anything else is outside
TOY = Weights(
    classes=("LOCATION", "O", "ORGANIZATION"),
    intercept=(0.0, 2.0, 0.0),
    coef={"prev1=at": (0.0, 0.0, 4.0), "prev1=in": (4.0, 0.0, 0.0)},
)


def test_probabilities_are_the_softmax_of_the_summed_weights():
    found = {"prev1=at": 1, "unknown feature": 1}
    logits = [0.0, 2.0, 4.0]
    expected = [math.exp(x) / sum(math.exp(y) for y in logits) for x in logits]
    assert TOY.probabilities(found) == pytest.approx(expected)
    assert sum(TOY.probabilities({})) == pytest.approx(1.0)


def test_the_recognizer_reports_runs_over_the_threshold_as_their_likeliest_entity():
    recognizer = SpanClassifierRecognizer("en", TOY)
    text = "Works at Brennan Haulage, lives in Kilkeel. Seen by Moira."
    found = {text[r.start : r.end]: (r.entity_type, r.score) for r in recognizer.analyze(text, ALL)}
    assert found.keys() == {"Brennan Haulage", "Kilkeel."}
    assert found["Brennan Haulage"][0] == "ORGANIZATION"
    assert found["Kilkeel."][0] == "LOCATION"
    assert all(score >= THRESHOLD for _, score in found.values())
    assert recognizer.analyze(text, ["PERSON"]) == []  # entities not asked for stay out


def test_fit_learns_weights_that_separate_what_it_was_shown(tmp_path):
    rows = [{"prev1=at": 1}] * 20 + [{"prev1=the": 1}] * 20
    weights = fit(rows, ["ORGANIZATION"] * 20 + ["O"] * 20)
    assert weights.classes == ("O", "ORGANIZATION")
    assert weights.probabilities({"prev1=at": 1})[1] > 0.8
    assert weights.probabilities({"prev1=the": 1})[1] < 0.2
    path = tmp_path / "weights.json"
    path.write_text(weights.to_json(), encoding="utf-8")
    assert load_weights(path) == weights


def test_shipped_weights_are_what_training_on_development_halves_gives():
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train_span_classifier.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "matches a fresh training" in done.stdout


DEID = Deid()


def detected(text: str, language: str = "en") -> list[tuple[str, str]]:
    model = DEID.spacy_model_fr if language == "fr" else DEID.spacy_model
    [spans], _ = detect_phi([text], model, language, DEID.score_threshold)
    return [(text[s.start : s.end], s.type) for s in spans]


def test_shipped_model_finds_places_and_employers_no_list_names():
    text = (
        "HOME VISIT - Tamarind Bay Community Nursing\n"
        "Client: Ngaire Whitcombe-Rua\n"
        "Lives in Okains Bay with her son; works part-time at Harbourside Bakehouse."
    )
    found = dict(detected(text))
    assert "Tamarind Bay Community Nursing" in found
    assert "Okains Bay" in found
    assert "Harbourside Bakehouse" in found


def test_the_classifier_adds_spans_but_types_them_last():
    # the classifier reads a run after "for" as an organisation; spaCy's PERSON keeps the
    # category
    assert detected("Call an ambulance for Zebulon Quaxley now.") == [("Zebulon Quaxley", "NAME")]


@pytest.mark.parametrize(
    "text",
    [
        "Malignant neoplasm: Colon, unspecified",
        "Dementia in Huntington disease",
        "Poisoning: Aminoglycosides",
        "Other variants of Turner syndrome",
        "Started on Eliquis and Lasix; Glasgow Coma Scale 15, Ottawa ankle rules negative.",
    ],
)
def test_shipped_model_leaves_clinical_vocabulary_alone(text: str):
    assert detected(text) == []
