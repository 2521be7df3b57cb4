import pytest
from presidio_analyzer import RecognizerResult

from medops.deid.filters import (
    drop_false_positives,
    is_calendar_date,
    is_clinical_department,
    is_eponym,
    is_known_term,
    is_medical_term,
    is_not_a_name,
    is_plausible_url,
    is_treatment,
    vocabulary,
)
from medops.deid.span_classifier import RECOGNIZER


@pytest.mark.parametrize(
    "span", ["March 3, 2021", "3/14/62", "2012-03-14", "14 mars 1962", "in 2019", "last Dec"]
)
def test_calendar_dates_are_dates(span: str) -> None:
    assert is_calendar_date(span)


@pytest.mark.parametrize("span", ["3 months", "two weeks", "daily", "the night", "250 lbs"])
def test_durations_and_amounts_are_not_dates(span: str) -> None:
    assert not is_calendar_date(span)


def test_known_terms_match_whole_spans_only() -> None:
    known = vocabulary(["Ortho Tri-Cyclen Lo", "Effexor XR", ""])
    assert is_known_term("Tri-Cyclen", known)
    assert is_known_term("Effexor XR.", known)
    assert not is_known_term("Effexor Smith", known)
    assert not is_known_term("", known)


@pytest.mark.parametrize(
    "span,plausible",
    [
        ("https://x.org/a", True),
        ("www.clinic.fr", True),
        ("example.com", True),
        ("DAYS.Af", False),
        ("time...na", False),
    ],
)
def test_url_plausibility(span: str, plausible: bool) -> None:
    assert is_plausible_url(span) is plausible


def test_drop_counts_each_rule_and_keeps_real_phi() -> None:
    text = "Smith took Zoloft for 3 months on 3/4/2020 see DAYS.Af"
    results = [
        RecognizerResult("PERSON", 0, 5, 0.85),
        RecognizerResult("PERSON", 11, 17, 0.85),
        RecognizerResult("DATE_TIME", 22, 30, 0.85),
        RecognizerResult("DATE_TIME", 34, 42, 0.85),
        RecognizerResult("URL", 47, 54, 0.5),
    ]
    kept, dropped = drop_false_positives(text, results, vocabulary(["Zoloft"]))
    assert [text[r.start : r.end] for r in kept] == ["Smith", "3/4/2020"]
    assert dropped == {"known_term": 1, "not_a_date": 1, "not_a_url": 1}


@pytest.mark.parametrize("span", ["142/74", "120/80", "7.5", "98.7", "13/13"])
def test_numbers_that_cannot_be_dates_are_not_dates(span: str) -> None:
    assert not is_calendar_date(span)


@pytest.mark.parametrize(
    "span",
    [
        "MG",
        "M.D.",
        "po",
        "Dr",
        "Monsieur",
        "Cher",
        "N",
        "S4",
        "B12",
        "HbA1c",
        "CM1",
        "Mum",
        "Fri",
        "PPSN",
        "H&C",
        "MBChB",
        "FCPS",
        "CD34 and CD19",
        "IXa and X",
        "VIII, IX",
        "APP-related",
        "D-resistant",
        "Behcet-like",
    ],
)
def test_abbreviations_titles_and_single_letters_are_not_names(span: str) -> None:
    assert is_not_a_name(span)


@pytest.mark.parametrize(
    "span",
    [
        "Lee",
        "Ivan",
        "YBARRA",
        "Rush",
        "Route 66 Diner",
        "Xi",
        "Shaft 4 and Mill",
        "Aix-les-Bains",
        "Jean-Pierre",
        "Mthembu-Radebe",
    ],
)
def test_short_real_names_are_names(span: str) -> None:
    assert not is_not_a_name(span)


@pytest.mark.parametrize(
    "text,span",
    [
        ("history of Parkinson's disease", "Parkinson"),
        ("Babinski sign negative", "Babinski"),
        ("une maladie de Crohn ancienne", "Crohn ancienne"),
        ("Score de Glasgow à 15", "Glasgow"),
    ],
)
def test_disease_eponyms_are_not_people(text: str, span: str) -> None:
    start = text.index(span)
    assert is_eponym(text, start, start + len(span))


def test_an_eponym_surname_without_a_disease_word_is_a_person() -> None:
    text = "Seen today with Mr Wilson and his wife."
    start = text.index("Wilson")
    assert not is_eponym(text, start, start + len("Wilson"))


def test_section_headers_and_drug_words_are_dropped_but_counted() -> None:
    text = "Neuro: alert.\nStarted Atenolol; Marcus Bell called 168/95 twice."
    results = [
        RecognizerResult("PERSON", 0, 5, 0.85),  # "Neuro" opens its line before ":"
        RecognizerResult("PERSON", 22, 30, 0.85),  # "Atenolol"
        RecognizerResult("PERSON", 32, 43, 0.85),  # "Marcus Bell"
        RecognizerResult("PHONE_NUMBER", 51, 57, 0.4),  # "168/95": too few digits
    ]
    kept, dropped = drop_false_positives(text, results, frozenset())
    assert [text[r.start : r.end] for r in kept] == ["Marcus Bell"]
    assert dropped == {"section_header": 1, "medical_term": 1, "not_a_phone": 1}


def test_medical_suffixes_spare_first_names() -> None:
    assert is_medical_term("Prednisone") and is_medical_term("Angioplasty")
    assert not is_medical_term("Caroline") and not is_medical_term("Marcus Bell")


def _found(text: str, results: list[RecognizerResult]) -> list[str]:
    kept, _ = drop_false_positives(text, results, frozenset())
    return [text[r.start : r.end] for r in kept]


def test_a_span_across_lines_is_judged_line_by_line():
    text = "Seen by Dr. John\nSmith today\nACCUEIL\nDate : 2 mars"
    wrapped = RecognizerResult("PERSON", 12, 22, 0.85)  # "John\nSmith"
    glued = RecognizerResult("PERSON", 29, 41, 0.85)  # "ACCUEIL\nDate"
    # the wrapped name stays redacted on both lines; "Date" opens a field label (a ward
    # such as "PÉDIATRIE" would go too: a medical suffix)
    assert _found(text, [wrapped, glued]) == ["John", "Smith", "ACCUEIL"]


def test_a_place_opening_its_line_before_a_lowercase_word_is_a_common_word():
    text = "Kaliémie à 6,1 mmol/l\nLyon, le 14 mars\nLinda called back"
    results = [
        RecognizerResult("LOCATION", 0, 8, 0.85),  # Kaliémie à
        RecognizerResult("LOCATION", 22, 26, 0.85),  # Lyon, le (a letter's place line)
        RecognizerResult("PERSON", 39, 44, 0.85),  # Linda called: names are never dropped so
    ]
    assert _found(text, results) == ["Lyon", "Linda"]


@pytest.mark.parametrize(
    "span,clinical",
    [
        ("Tumor Board", True),
        ("Pelvic Floor Physiotherapy", True),
        ("Dental", False),
        ("Riverside Physiotherapy", False),
        ("Parole Board", False),
    ],
)
def test_clinical_boards_and_therapies_are_departments(span: str, clinical: bool) -> None:
    assert is_clinical_department(span) is clinical


@pytest.mark.parametrize(
    "text,word,drug",
    [
        ("Asthme sous Ventoline à la demande", "Ventoline", True),
        ("then started on Brilinta 90", "Brilinta", True),
        ("switched to Clavulin", "Clavulin", True),
        ("Aulnay-sous-Bois, chez Mme Morel", "Morel", False),
        ("seen by Linda today", "Linda", False),
        ("sous la responsabilité de Marie Lenoir", "Marie Lenoir", False),
    ],
)
def test_a_word_after_a_treatment_cue_is_a_drug(text: str, word: str, drug: bool) -> None:
    start = text.index(word)
    assert is_treatment(text, start, start + len(word)) is drug


def test_one_word_organisations_are_kept_from_the_span_classifier_only() -> None:
    # spaCy's one-word organisations are mostly shorthand ("ESR"); the classifier was
    # trained against such words, so its acronyms ("PGHM") are kept
    text = "Évacuée par le PGHM vers Annecy."
    learned = RecognizerResult(
        "ORGANIZATION",
        15,
        19,
        0.9,
        recognition_metadata={RecognizerResult.RECOGNIZER_NAME_KEY: RECOGNIZER},
    )
    spacy = RecognizerResult(
        "ORGANIZATION",
        15,
        19,
        0.85,
        recognition_metadata={RecognizerResult.RECOGNIZER_NAME_KEY: "SpacyRecognizer"},
    )
    kept, dropped = drop_false_positives(text, [learned, spacy], frozenset())
    assert kept == [learned]
    assert dropped == {"unlikely_organisation": 1}
