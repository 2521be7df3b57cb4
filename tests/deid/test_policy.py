from __future__ import annotations

import pytest

from medops.deid.filters import vocabulary
from medops.deid.policy import apply_policy, check_choices
from medops.deid.pseudonyms import Pseudonymizer
from medops.recipe import Deid

DEID = Deid()
KEY = b"k" * 32
NOTE = "Seen by Dr. Maria Gonzalez on 03/14/2021, follow-up on 03/28/2021 for acne."


def test_redact_replaces_spans_by_category_tags_in_order():
    texts = [NOTE, "No identifiers here, just acne."]
    applied = apply_policy(texts, ["p1", "p2"], DEID, frozenset())
    assert applied.texts == [
        "Seen by Dr. [NAME] on [DATE], follow-up on [DATE] for acne.",
        texts[1],
    ]
    assert [[s.type for s in row] for row in applied.spans] == [["NAME", "DATE", "DATE"], []]
    assert applied.languages == ["en", "en"]


def test_known_terms_are_never_redacted():
    # spaCy small tags this condition as a place and these drugs as a place and a name
    text = (
        "I have Acne and took Epiduo. Acne got worse after Ortho Tri-Cyclen; "
        "Dr. Maria Gonzalez agreed."
    )
    plain = apply_policy([text], ["p"], DEID, frozenset()).texts[0]
    known = vocabulary(["Acne", "Epiduo", "Ortho Tri-Cyclen Lo"])
    kept = apply_policy([text], ["p"], DEID, known).texts[0]
    assert "Epiduo" not in plain and "Tri-Cyclen" not in plain
    assert kept == (
        "I have Acne and took Epiduo. Acne got worse after Ortho Tri-Cyclen; Dr. [NAME] agreed."
    )


def test_pseudonymize_keeps_intervals_per_patient_and_surrogates_consistent():
    twice = [NOTE, "Dr. Maria Gonzalez called back on 04/01/2021."]
    applied = apply_policy(twice, ["p1", "p1"], DEID, frozenset(), pseudonymizer=Pseudonymizer(KEY))
    first, second = applied.texts
    assert "Gonzalez" not in first + second and "03/14/2021" not in first
    surrogate = Pseudonymizer(KEY).token("NAME", "Maria Gonzalez")
    assert surrogate in first and surrogate in second
    other = apply_policy([NOTE], ["p2"], DEID, frozenset(), pseudonymizer=Pseudonymizer(KEY))
    assert other.texts[0] != first  # another patient, another date shift
    assert applied.dates_redacted == 0


def test_auto_language_routes_each_text_to_its_engine():
    pytest.importorskip(DEID.spacy_model_fr)
    french = "Patiente revue le 12 mars 2023 avec sa fille pour une maladie de Crohn."
    applied = apply_policy([french, NOTE], ["a", "b"], DEID, frozenset(), language="auto")
    assert applied.languages == ["fr", "en"]
    assert "[DATE]" in applied.texts[0] and "Crohn" in applied.texts[0]


def test_bad_choices_are_named():
    with pytest.raises(ValueError, match="language 'de'"):
        check_choices("de", "redact", None)
    with pytest.raises(ValueError, match="policy 'hash'"):
        check_choices("en", "hash", None)
    with pytest.raises(ValueError, match="needs a key"):
        check_choices("en", "pseudonymize", None)


def test_nothing_to_do_loads_no_engine():
    unusable = Deid(spacy_model="no_such_spacy_model")
    assert apply_policy([], [], unusable, frozenset()).texts == []
