import pytest
from presidio_analyzer import RecognizerResult

from medops.data.phi_filters import (
    drop_false_positives,
    is_calendar_date,
    is_known_term,
    is_plausible_url,
    vocabulary,
)


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
