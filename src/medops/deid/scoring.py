"""Score predicted PHI spans against gold spans: one scorer for tests, bench and docs.

Three ways to match, all type-agnostic for "was it protected?" (a name redacted as
``[LOCATION]`` is still redacted):
- ``covered`` (the target of issue 3): a gold span is found when the predicted spans
  together cover every letter and digit of it; a prediction is correct when it overlaps
  a gold span.
- ``overlap``: a gold span is found when any prediction overlaps it; same precision.
- ``exact``: offsets must be equal, both ways.
Recall per category groups gold spans by their category, precision per category groups
predictions by theirs.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from medops.deid.spans import CATEGORIES, Category, Span

MODES = ("covered", "overlap", "exact")
# i2b2 2014 de-identification types (philter-lite's gold uses them) onto categories;
# PROFESSION is not an identifier under HIPAA Safe Harbor and is not scored.
I2B2_CATEGORY: dict[str, Category] = {
    "PATIENT": "NAME",
    "DOCTOR": "NAME",
    "USERNAME": "ID",
    "DATE": "DATE",
    "AGE": "AGE",
    "PHONE": "CONTACT",
    "FAX": "CONTACT",
    "EMAIL": "CONTACT",
    "URL": "CONTACT",
    "IPADDR": "CONTACT",
    "STREET": "LOCATION",
    "CITY": "LOCATION",
    "STATE": "LOCATION",
    "ZIP": "LOCATION",
    "COUNTRY": "LOCATION",
    "LOCATION-OTHER": "LOCATION",
    "HOSPITAL": "ORGANIZATION",
    "ORGANIZATION": "ORGANIZATION",
    "MEDICALRECORD": "ID",
    "IDNUM": "ID",
    "DEVICE": "ID",
    "HEALTHPLAN": "ID",
    "BIOID": "ID",
    "ACCOUNT": "ID",
    "LICENSE": "ID",
    "SSN": "ID",
}


@dataclass(frozen=True)
class Document:
    text: str
    gold: Sequence[Span]
    predicted: Sequence[Span]


@dataclass
class _Tally:
    gold: int = 0
    found: int = 0
    predicted: int = 0
    correct: int = 0

    def scores(self) -> dict[str, float | int]:
        precision = self.correct / self.predicted if self.predicted else 1.0
        recall = self.found / self.gold if self.gold else 1.0
        total = precision + recall
        return {
            "precision": round(precision, 4),
            "recall": round(recall, 4),
            "f1": round(2 * precision * recall / total if total else 0.0, 4),
            "gold": self.gold,
            "found": self.found,
            "predicted": self.predicted,
            "correct": self.correct,
        }


@dataclass
class _Mode:
    overall: _Tally = field(default_factory=_Tally)
    per_category: dict[str, _Tally] = field(default_factory=dict)

    def tally(self, category: str) -> _Tally:
        return self.per_category.setdefault(category, _Tally())


@dataclass(frozen=True)
class GoldNote:
    id: str
    text: str
    gold: list[Span]


def load_i2b2_notes(path: Path) -> list[GoldNote]:
    """philter-lite's ``phi_notes_i2b2.json``: ``{note_id: {"text", "phi": [...]}}``.

    Each gold span must match its recorded text, so a shifted offset fails loudly here
    instead of silently scoring wrong.
    """
    notes = []
    for note_id, note in json.loads(Path(path).read_text(encoding="utf-8")).items():
        text, gold = note["text"], []
        for phi in note["phi"]:
            start, end = int(phi["start"]), int(phi["end"])
            if text[start:end] != phi["text"]:
                raise ValueError(f"{path}: note {note_id} span {phi['id']} offsets do not match")
            if phi["TYPE"] in I2B2_CATEGORY:
                gold.append(Span(start, end, I2B2_CATEGORY[phi["TYPE"]]))
        notes.append(GoldNote(note_id, text, sorted(gold)))
    return notes


_MARK = re.compile(r"\[\[([A-Z]+):(.+?)\]\]", re.DOTALL)
_NOTE_HEADER = re.compile(r"^=== (\S+) ===$", re.MULTILINE)


def parse_marked(marked: str) -> tuple[str, list[Span]]:
    """``"seen by [[NAME:Jean Dupont]]"`` -> plain text and its gold spans."""
    parts, spans, cursor, length = [], [], 0, 0
    for match in _MARK.finditer(marked):
        category, value = match.groups()
        if category not in CATEGORIES:
            raise ValueError(f"unknown category {category!r} in a marked note")
        before = marked[cursor : match.start()]
        parts += [before, value]
        length += len(before)
        spans.append(Span(length, length + len(value), category))
        length += len(value)
        cursor = match.end()
    parts.append(marked[cursor:])
    return "".join(parts), spans


def load_marked_notes(path: Path) -> list[GoldNote]:
    """Notes written as ``=== id ===`` headers, each followed by its marked-up text."""
    raw = Path(path).read_text(encoding="utf-8")
    headers = list(_NOTE_HEADER.finditer(raw))
    notes = []
    for header, following in zip(headers, [*headers[1:], None], strict=True):
        body = raw[header.end() : following.start() if following else len(raw)].strip("\n")
        text, gold = parse_marked(body)
        notes.append(GoldNote(header.group(1), text, gold))
    return notes


SAFE_HARBOR_MAX_AGE = 89


def safe_harbor(note: GoldNote) -> GoldNote:
    """The note without gold AGE spans of 89 or less: HIPAA Safe Harbor lists only ages
    over 89, and medops keeps younger ages on purpose (they carry clinical signal)."""

    def kept(span: Span) -> bool:
        digits = re.findall(r"\d+", note.text[span.start : span.end])
        return span.type != "AGE" or not digits or int(digits[0]) > SAFE_HARBOR_MAX_AGE

    return GoldNote(note.id, note.text, [span for span in note.gold if kept(span)])


T = TypeVar("T")
SPLIT_RULE = (
    "items sorted by the sha256 of their key (UTF-8 hex digest, ties by key); the first "
    "half, rounded up, is development, the rest is held out"
)


def split_half(items: Sequence[T], key: Callable[[T], str]) -> tuple[list[T], list[T]]:
    """Development and held-out halves, by a hash of each item's key (``SPLIT_RULE``).

    A hash rather than the file order, so neither half is the notes written first; a
    sorted cut rather than a hash threshold, so the halves of a small set are equal.
    """
    ordered = sorted(
        items, key=lambda item: (hashlib.sha256(key(item).encode()).hexdigest(), key(item))
    )
    middle = (len(ordered) + 1) // 2
    return ordered[:middle], ordered[middle:]


def _overlaps(a: Span, b: Span) -> bool:
    return a.start < b.end and b.start < a.end


def _covered(text: str, gold: Span, predicted: Sequence[Span]) -> bool:
    return all(
        any(p.start <= i < p.end for p in predicted)
        for i in range(gold.start, gold.end)
        if text[i].isalnum()
    )


def _gold_found(mode: str, doc: Document, gold: Span) -> bool:
    if mode == "exact":
        return any((p.start, p.end) == (gold.start, gold.end) for p in doc.predicted)
    touching = [p for p in doc.predicted if _overlaps(p, gold)]
    if mode == "overlap":
        return bool(touching)
    return bool(touching) and _covered(doc.text, gold, touching)


def _prediction_correct(mode: str, doc: Document, pred: Span) -> bool:
    if mode == "exact":
        return any((g.start, g.end) == (pred.start, pred.end) for g in doc.gold)
    return any(_overlaps(pred, g) for g in doc.gold)


def score(documents: Sequence[Document]) -> dict[str, dict[str, object]]:
    """Precision, recall and F1 overall and per category, for each match mode."""
    report: dict[str, dict[str, object]] = {}
    for mode in MODES:
        totals = _Mode()
        for doc in documents:
            for gold in doc.gold:
                hit = _gold_found(mode, doc, gold)
                for tally in (totals.overall, totals.tally(gold.type)):
                    tally.gold += 1
                    tally.found += hit
            for pred in doc.predicted:
                hit = _prediction_correct(mode, doc, pred)
                for tally in (totals.overall, totals.tally(pred.type)):
                    tally.predicted += 1
                    tally.correct += hit
        report[mode] = {
            "overall": totals.overall.scores(),
            "per_category": {
                name: tally.scores() for name, tally in sorted(totals.per_category.items())
            },
        }
    return report
