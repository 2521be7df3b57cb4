"""The pseudonymize policy's surrogates: keyed, consistent, interval-preserving dates."""

from __future__ import annotations

import datetime as dt

import pytest

from medops.deid.pseudonyms import MAX_SHIFT_DAYS, Pseudonymizer, shift_date
from medops.deid.spans import Span
from medops.privacy.keys import PseudonymKeyError, load_key

KEY = b"k" * 32
OTHER = b"o" * 32
SECRET_KEY = "do-not-print-this-key-0123456789"


def test_same_key_same_surrogate_normalised_and_typed() -> None:
    one, two = Pseudonymizer(KEY), Pseudonymizer(KEY)
    name = one.token("NAME", "Gwendolyn Featherstone")
    assert name.startswith("Name-") and len(name) == len("Name-") + 8
    assert two.token("NAME", "  gwendolyn\n FEATHERSTONE ") == name
    assert one.token("ID", "8249813").startswith("[ID-") and one.token("ID", "8249813")[-1] == "]"
    assert one.token("ORGANIZATION", "CHU de Bordeaux").startswith("[ORGANIZATION-")
    assert one.token("NAME", "Yvette Morel") != name
    assert Pseudonymizer(OTHER).token("NAME", "Gwendolyn Featherstone") != name
    assert "k" * 16 not in repr(one)


def test_shift_is_per_patient_bounded_and_nonzero() -> None:
    pseudo = Pseudonymizer(KEY)
    shifts = [pseudo.shift_days(f"patient-{i}") for i in range(200)]
    assert all(1 <= abs(s) <= MAX_SHIFT_DAYS for s in shifts)
    assert len(set(shifts)) > 100  # two patients almost surely differ
    assert pseudo.shift_days("p1") == Pseudonymizer(KEY).shift_days("p1")
    assert pseudo.shift_days("p1") != Pseudonymizer(OTHER).shift_days("p1")


@pytest.mark.parametrize(
    ("original", "days", "dayfirst", "expected"),
    [
        ("2012-03-14", 10, False, "2012-03-24"),
        ("3/14/2012", -14, False, "2/29/2012"),
        ("03/14/2012", 30, False, "04/13/2012"),
        ("14/03/2012", 1, False, "15/03/2012"),
        ("04/03/2012", 1, True, "05/03/2012"),
        ("04/03/2012", 1, False, "04/04/2012"),
        ("3/14/62", 365, False, "3/14/63"),
        ("March 14, 2012", 20, False, "April 3, 2012"),
        ("Mar. 14 2012", -30, False, "Feb. 13 2012"),
        ("14 March 2012", 365, False, "14 March 2013"),
        ("14 mars 2012", 150, True, "11 août 2012"),
        ("1er janvier 2020", -1, True, "31 décembre 2019"),
        ("14 MARS 2012", 1, True, "15 MARS 2012"),
    ],
)
def test_dates_shift_in_their_own_format(
    original: str, days: int, dayfirst: bool, expected: str
) -> None:
    assert shift_date(original, days, dayfirst) == expected


@pytest.mark.parametrize("text", ["Tuesday", "in 3/80", "depuis 2015", "March 2012", "2/30/2012"])
def test_dates_that_cannot_be_parsed_are_none(text: str) -> None:
    assert shift_date(text, 5) is None


def test_french_date_round_trip() -> None:
    shifted = shift_date("14 mars 2012", 200, dayfirst=True)
    assert shifted is not None and shifted != "14 mars 2012"
    assert shift_date(shifted, -200, dayfirst=True) == "14 mars 2012"


def test_intervals_between_one_patients_dates_are_preserved() -> None:
    pseudo = Pseudonymizer(KEY)
    text = "Admitted 2012-03-14, discharged 3/29/2012, seen Tuesday."
    spans = [Span(9, 19, "DATE"), Span(32, 41, "DATE"), Span(48, 55, "DATE")]
    out, unparsed = pseudo.apply(text, spans, "patient-7")
    assert unparsed == 1 and out.endswith("seen [DATE].")
    first, second = out.split(", discharged ")
    a = dt.date.fromisoformat(first.removeprefix("Admitted "))
    month, day, year = (int(x) for x in second.split(",")[0].split("/"))
    assert (dt.date(year, month, day) - a).days == 15
    assert abs((a - dt.date(2012, 3, 14)).days) == abs(pseudo.shift_days("patient-7"))


def test_age_and_other_types() -> None:
    pseudo = Pseudonymizer(KEY)
    text = "Mr. Smith, 92 yo, MRN 8249813."
    spans = [Span(4, 9, "NAME"), Span(11, 13, "AGE"), Span(22, 29, "ID")]
    out, _ = pseudo.apply(text, spans, "p")
    assert out == (
        f"Mr. {pseudo.token('NAME', 'Smith')}, [AGE>89] yo, MRN {pseudo.token('ID', '8249813')}."
    )


def test_key_missing_or_short_names_the_variable_not_the_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MEDOPS_DEID_KEY", raising=False)
    with pytest.raises(PseudonymKeyError, match="MEDOPS_DEID_KEY is not set.*export"):
        load_key()
    monkeypatch.setenv("MY_KEY", "short-secret")
    with pytest.raises(PseudonymKeyError, match="MY_KEY holds fewer than 16 bytes") as info:
        load_key("MY_KEY")
    assert "short-secret" not in str(info.value)
    monkeypatch.setenv("MY_KEY", SECRET_KEY)
    assert load_key("MY_KEY") == SECRET_KEY.encode()
    with pytest.raises(PseudonymKeyError):
        Pseudonymizer(b"short")
