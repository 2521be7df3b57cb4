from __future__ import annotations

import logging

import pytest

from medops.deid.detect import DeidError, detect_phi, engines
from medops.deid.filters import vocabulary
from medops.recipe import Deid

DEID = Deid()


def spans_of(text: str, known: frozenset[str] = frozenset()):
    [spans], dropped = detect_phi([text], DEID.spacy_model, "en", DEID.score_threshold, known)
    return [(text[s.start : s.end], s.type) for s in spans], dropped


def test_planted_phi_is_found_typed_and_kept_out_of_logs(caplog):
    caplog.set_level(logging.DEBUG)
    text = (
        "My name is John Smith, email john.smith@example.com, call 555-123-4567. "
        "I was seen on March 3, 2021."
    )
    found, _ = spans_of(text)
    assert ("John Smith", "NAME") in found
    assert ("john.smith@example.com", "CONTACT") in found
    assert ("555-123-4567", "CONTACT") in found
    assert ("March 3, 2021", "DATE") in found
    # presidio logs matched text at DEBUG; de-id must keep that out of the logs
    assert "Smith" not in caplog.text and "john.smith" not in caplog.text
    # the e-mail validator must not try to fetch the public suffix list
    assert not [r for r in caplog.records if r.name.startswith("tldextract")]


@pytest.mark.parametrize("phone", ["555-123-4567", "(555) 123 4567", "555.123.4567"])
def test_loose_us_phone_forms_are_caught(phone: str):
    found, _ = spans_of(f"You can reach me at {phone} most evenings.")
    assert found == [(phone, "CONTACT")]


def test_text_without_phi_has_no_spans_and_batches_keep_order():
    texts = ["This pill cleared my skin and I feel great.", "Contact me at a.b@example.org"]
    spans, _ = detect_phi(texts, DEID.spacy_model, "en", DEID.score_threshold)
    assert spans[0] == [] and [s.type for s in spans[1]] == ["CONTACT"]


def test_engine_is_built_once_per_model_and_missing_model_is_a_clear_error():
    assert engines(DEID.spacy_model) is engines(DEID.spacy_model)
    with pytest.raises(DeidError, match="no_such_spacy_model"):
        engines("no_such_spacy_model")


def test_empty_input_loads_nothing():
    assert detect_phi([], "no_such_spacy_model") == ([], {})


def test_drug_names_and_durations_are_kept_but_names_and_dates_are_not():
    text = (
        "Dr. Maria Gonzalez switched me to Effexor on 3/14/2012. I took Effexor for "
        "3 months and Seroquel for two weeks."
    )
    found, dropped = spans_of(text, vocabulary(["Effexor XR", "Seroquel"]))
    assert ("Maria Gonzalez", "NAME") in found and ("3/14/2012", "DATE") in found
    covered = " ".join(span for span, _ in found)
    for kept in ("Effexor", "Seroquel", "3 months", "two weeks"):
        assert kept not in covered
    assert sum(dropped.values()) >= 1
