"""PHI spans in a record's original offsets, typed by the categories users see.

presidio and medops' recognizers each speak their own entity names (``PERSON``,
``US_SSN``, ``MEDICAL_RECORD``, ...); users, the evaluation and the CLI speak seven
categories. One table maps the first onto the second, so a new recognizer only needs a
row here. Overlapping detections are merged into one span, so every detected character
is redacted exactly once and counted once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

Category = Literal["NAME", "DATE", "AGE", "CONTACT", "LOCATION", "ID", "ORGANIZATION"]
CATEGORIES: tuple[Category, ...] = (
    "NAME",
    "DATE",
    "AGE",
    "CONTACT",
    "LOCATION",
    "ID",
    "ORGANIZATION",
)

# presidio's entity names (left) and medops' own (recognizers.py) onto categories.
CATEGORY_OF: dict[str, Category] = {
    "PERSON": "NAME",
    "TITLED_NAME": "NAME",
    "SIGNED_NAME": "NAME",
    "FIELD_NAME": "NAME",
    "TYPIST_INITIALS": "NAME",
    "LAST_FIRST_NAME": "NAME",
    "RELATION_NAME": "NAME",
    "DATE_TIME": "DATE",
    "SHORT_DATE": "DATE",
    "WRITTEN_DATE": "DATE",
    "AGE": "AGE",
    "AGE_OVER_89": "AGE",
    "EMAIL_ADDRESS": "CONTACT",
    "PHONE_NUMBER": "CONTACT",
    "FR_PHONE_NUMBER": "CONTACT",
    "PAGER_NUMBER": "CONTACT",
    "INTL_PHONE_NUMBER": "CONTACT",
    "URL": "CONTACT",
    "IP_ADDRESS": "CONTACT",
    "MAC_ADDRESS": "CONTACT",
    "LOCATION": "LOCATION",
    "STREET_ADDRESS": "LOCATION",
    "POSTCODE": "LOCATION",
    "TOWN": "LOCATION",
    "CITY": "LOCATION",
    "ORGANIZATION": "ORGANIZATION",
    "HEALTHCARE_ORGANIZATION": "ORGANIZATION",
    "EMPLOYER": "ORGANIZATION",
    "US_SSN": "ID",
    "SSN": "ID",
    "US_ITIN": "ID",
    "US_PASSPORT": "ID",
    "US_DRIVER_LICENSE": "ID",
    "US_BANK_NUMBER": "ID",
    "CREDIT_CARD": "ID",
    "IBAN_CODE": "ID",
    "MEDICAL_LICENSE": "ID",
    "UK_NHS": "ID",
    "CRYPTO": "ID",
    "UUID": "ID",
    "ID": "ID",
    "FR_NIR": "ID",
    "MEDICAL_RECORD": "ID",
    "ID_NUMBER": "ID",
    "SIGNATURE_CODE": "ID",
}

_TRIM = " \t\r\n-,;:."


@dataclass(frozen=True, order=True)
class Span:
    start: int
    end: int
    type: str

    def to_dict(self) -> dict[str, int | str]:
        return {"start": self.start, "end": self.end, "type": self.type}


@dataclass(frozen=True)
class Detection:
    """One recognizer's finding, already mapped to a category.

    ``pattern`` is False for the statistical NER model: where it overlaps a pattern
    ("Bordeaux" inside "CHU de Bordeaux"), the pattern's narrower category wins.
    ``learned`` marks the span classifier (``span_classifier``), which adds spans the
    others miss but types them last: a name spaCy calls PERSON stays a NAME.
    """

    start: int
    end: int
    type: str
    score: float
    pattern: bool = True
    learned: bool = False


def trimmed(text: str, start: int, end: int) -> tuple[int, int]:
    """Drop surrounding blanks and punctuation: spaCy spans often end in ``\\n\\n`` or ``--``."""
    while start < end and text[start] in _TRIM:
        start += 1
    while end > start and text[end - 1] in _TRIM:
        end -= 1
    return start, end


def merge(detections: Iterable[Detection]) -> list[Span]:
    """Union overlapping detections; the merged span takes one member's type.

    That member is a pattern's before the NER model's before the span classifier's, then
    the longest, then the best scored, then the first category in ``CATEGORIES``, so output
    is deterministic.
    """
    ordered = sorted((d for d in detections if d.end > d.start), key=lambda d: (d.start, d.end))
    spans: list[Span] = []
    group: list[Detection] = []
    end = -1
    for det in [*ordered, None]:
        if det is not None and group and det.start < end:
            group.append(det)
            end = max(end, det.end)
            continue
        if group:
            best = max(
                group,
                key=lambda d: (d.pattern, not d.learned, d.end - d.start, d.score, -_rank(d.type)),
            )
            spans.append(Span(group[0].start, end, best.type))
        if det is not None:
            group, end = [det], det.end
    return spans


def _rank(category: str) -> int:
    return CATEGORIES.index(category) if category in CATEGORIES else len(CATEGORIES)


def redact(text: str, spans: Sequence[Span]) -> str:
    """Replace each (non-overlapping, sorted) span by its ``[CATEGORY]`` tag."""
    parts, cursor = [], 0
    for span in spans:
        parts.append(text[cursor : span.start])
        parts.append(f"[{span.type}]")
        cursor = span.end
    parts.append(text[cursor:])
    return "".join(parts)
