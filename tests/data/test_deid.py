from __future__ import annotations

import logging

import pytest

from medops.data.deid import DeidError, deidentify, engines
from medops.data.phi_filters import vocabulary
from medops.recipe import Deid

DEID = Deid()


def run(texts: list[str]):
    redacted, counts, _ = deidentify(texts, DEID.entities, DEID.score_threshold, DEID.spacy_model)
    return redacted, counts


def test_planted_phi_is_replaced_by_typed_tags_and_counted(caplog):
    caplog.set_level(logging.DEBUG)
    text = (
        "My name is John Smith, email john.smith@example.com, call 555-123-4567. "
        "I was seen on March 3, 2021."
    )
    [redacted], counts = run([text])
    for secret in ("John", "Smith", "john.smith@example.com", "555-123-4567", "March 3, 2021"):
        assert secret not in redacted
    for tag in ("[PERSON]", "[EMAIL_ADDRESS]", "[PHONE_NUMBER]", "[DATE_TIME]"):
        assert tag in redacted
    assert counts["PERSON"] == 1 and counts["EMAIL_ADDRESS"] == 1
    assert counts["PHONE_NUMBER"] == 1 and counts["DATE_TIME"] == 1
    # presidio logs matched text at DEBUG; de-id must keep that out of the logs
    assert "Smith" not in caplog.text and "john.smith" not in caplog.text
    # the e-mail validator must not try to fetch the public suffix list
    assert not [r for r in caplog.records if r.name.startswith("tldextract")]


@pytest.mark.parametrize("phone", ["555-123-4567", "(555) 123 4567", "555.123.4567"])
def test_loose_us_phone_forms_are_caught(phone: str):
    [redacted], counts = run([f"You can reach me at {phone} most evenings."])
    assert phone not in redacted
    assert counts["PHONE_NUMBER"] == 1


def test_text_without_phi_is_unchanged_and_batches_keep_order():
    texts = ["This pill cleared my skin and I feel great.", "Contact me at a.b@example.org"]
    redacted, counts = run(texts)
    assert redacted == [texts[0], "Contact me at [EMAIL_ADDRESS]"]
    assert counts == {"EMAIL_ADDRESS": 1}


def test_engine_is_built_once_per_model_and_missing_model_is_a_clear_error():
    assert engines(DEID.spacy_model) is engines(DEID.spacy_model)
    with pytest.raises(DeidError, match="no_such_spacy_model"):
        engines("no_such_spacy_model")


def test_empty_input_loads_nothing():
    assert run([]) == ([], {})


def test_drug_names_and_durations_are_kept_but_names_and_dates_are_not():
    text = (
        "Dr. Maria Gonzalez switched me to Effexor on 3/14/2012. I took Effexor for "
        "3 months and Seroquel for two weeks."
    )
    known = vocabulary(["Effexor XR", "Seroquel"])
    [redacted], counts, dropped = deidentify(
        [text], DEID.entities, DEID.score_threshold, DEID.spacy_model, known
    )
    assert "Gonzalez" not in redacted and "3/14/2012" not in redacted
    assert "Effexor" in redacted
    assert "3 months" in redacted and "two weeks" in redacted
    assert counts["PERSON"] >= 1 and counts["DATE_TIME"] == 1
    assert dropped["not_a_date"] >= 1
