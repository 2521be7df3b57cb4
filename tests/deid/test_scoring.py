"""The scorer on hand-made examples whose precision and recall are known."""

from __future__ import annotations

from pathlib import Path

import pytest

from medops.deid.scoring import Document, load_i2b2_notes, load_marked_notes, parse_marked, score
from medops.deid.spans import Span

FIXTURES = Path(__file__).parent / "fixtures"


def test_known_precision_and_recall_in_each_mode() -> None:
    text = "Seen by John Smith on 3/14/2012 at MRN 12345, Boston."
    gold = [Span(8, 18, "NAME"), Span(22, 31, "DATE"), Span(39, 44, "ID"), Span(46, 52, "LOCATION")]
    predicted = [
        Span(8, 12, "NAME"),  # "John": overlaps, but leaves "Smith" visible
        Span(22, 31, "DATE"),  # exact
        Span(39, 44, "NAME"),  # exact offsets, wrong category: still protects the ID
        Span(0, 4, "NAME"),  # "Seen": a false positive
    ]
    report = score([Document(text, gold, predicted)])

    covered = report["covered"]["overall"]
    assert (covered["found"], covered["gold"]) == (2, 4)  # DATE and ID fully covered
    assert (covered["correct"], covered["predicted"]) == (3, 4)
    assert covered["recall"] == 0.5 and covered["precision"] == 0.75
    assert covered["f1"] == pytest.approx(2 * 0.5 * 0.75 / 1.25, abs=1e-4)

    overlap = report["overlap"]["overall"]
    assert overlap["recall"] == 0.75 and overlap["precision"] == 0.75

    exact = report["exact"]["overall"]
    assert exact["recall"] == 0.5 and exact["precision"] == 0.5

    per = report["covered"]["per_category"]
    assert per["NAME"]["recall"] == 0.0  # gold NAME not fully covered
    assert per["NAME"]["precision"] == pytest.approx(2 / 3, abs=1e-4)  # John, the ID, Seen
    assert per["ID"]["recall"] == 1.0 and per["ID"]["predicted"] == 0
    assert per["LOCATION"]["recall"] == 0.0


def test_covered_ignores_punctuation_and_accepts_several_pieces() -> None:
    text = "Villegas, Yosef"
    gold = [Span(0, 15, "NAME")]
    pieces = [Span(0, 8, "NAME"), Span(10, 15, "NAME")]  # the comma and blank are not PHI
    assert score([Document(text, gold, pieces)])["covered"]["overall"]["recall"] == 1.0


def test_nothing_to_find_and_nothing_found_is_perfect_not_a_division_error() -> None:
    overall = score([Document("no phi here", [], [])])["covered"]["overall"]
    assert overall["precision"] == overall["recall"] == 1.0


def test_marked_notes_parse_to_text_and_offsets() -> None:
    text, spans = parse_marked("Dr. [[NAME:Jean Dupont]], né le [[DATE:14 mars 1962]].")
    assert text == "Dr. Jean Dupont, né le 14 mars 1962."
    assert [(text[s.start : s.end], s.type) for s in spans] == [
        ("Jean Dupont", "NAME"),
        ("14 mars 1962", "DATE"),
    ]
    with pytest.raises(ValueError, match="PERSON"):
        parse_marked("[[PERSON:x]]")


def test_fixture_sets_load_with_consistent_offsets() -> None:
    philter = load_i2b2_notes(FIXTURES / "philter_i2b2" / "phi_notes_i2b2.json")
    assert len(philter) == 5 and sum(len(n.gold) for n in philter) == 46
    for language in ("en", "fr"):
        notes = load_marked_notes(FIXTURES / "deid_notes" / f"{language}.txt")
        assert len(notes) >= 14 and all(n.gold for n in notes)
        assert "[[" not in "".join(n.text for n in notes)


def test_i2b2_offsets_that_do_not_match_their_text_fail_loudly(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(
        '{"n1": {"text": "Seen by Smith", "phi": '
        '[{"TYPE": "DOCTOR", "start": "0", "end": "4", "text": "Smith", "id": "P0"}]}}'
    )
    with pytest.raises(ValueError, match="n1 span P0"):
        load_i2b2_notes(bad)
