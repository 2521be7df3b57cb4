"""Drop detections that are not identifiers, so de-identification keeps clinical meaning.

Measured on the demo reviews, stock presidio + spaCy small redacted drug names as
``[PERSON]`` ("I took [PERSON] for [DATE_TIME]") and durations such as "3 months" as
dates; run-together sentences ("DAYS.Af") became URLs. None of these identifies anyone
(HIPAA Safe Harbor lists calendar-date elements, not durations), and each destroys
signal a clinician or a model needs. Each rule is narrow and counted in the manifest.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

from presidio_analyzer import RecognizerResult

_MONTH = (
    r"\b(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\b"
)
_CALENDAR = re.compile(
    rf"{_MONTH}|\b\d{{1,4}}[/.-]\d{{1,2}}(?:[/.-]\d{{2,4}})?\b|\b(?:19|20)\d{{2}}\b",
    re.IGNORECASE,
)
_NAME_LIKE = {"PERSON", "LOCATION", "ORGANIZATION", "NRP"}
_TOKEN_SPLIT = re.compile(r"[\s/,;()]+")
_EDGE_PUNCT = ".,;:!?'\"()[]{}*-"


def _tokens(text: str) -> list[str]:
    return [t for t in (part.strip(_EDGE_PUNCT) for part in _TOKEN_SPLIT.split(text)) if t]


def vocabulary(terms: Iterable[str]) -> frozenset[str]:
    """Casefolded terms and their tokens: 'Ortho Tri-Cyclen Lo' keeps 'tri-cyclen' too."""
    words: set[str] = set()
    for term in terms:
        folded = term.casefold().strip()
        if not folded:
            continue
        words.add(folded)
        words.update(
            t.strip(_EDGE_PUNCT) for t in _TOKEN_SPLIT.split(folded) if t.strip(_EDGE_PUNCT)
        )
    return frozenset(words)


def is_calendar_date(span: str) -> bool:
    """A month name, a numeric date (3/14/62, 2012-03-14) or a year; not '3 months'."""
    return _CALENDAR.search(span) is not None


def is_known_term(span: str, known: frozenset[str]) -> bool:
    tokens = _tokens(span.casefold())
    return bool(tokens) and all(t in known for t in tokens)


def is_plausible_url(span: str) -> bool:
    """A scheme or www., or a lowercase top-level domain with no '..' (not 'DAYS.Af')."""
    lowered = span.lower()
    if "://" in lowered or lowered.startswith("www."):
        return True
    suffix = span.rstrip("/").rsplit(".", 1)[-1]
    return ".." not in span and suffix.islower()


def drop_false_positives(
    text: str, results: Sequence[RecognizerResult], known: frozenset[str]
) -> tuple[list[RecognizerResult], Counter[str]]:
    """Detections to redact, and counts of those dropped per rule (never the spans)."""
    kept, dropped = [], Counter()
    for result in results:
        span = text[result.start : result.end]
        if result.entity_type in _NAME_LIKE and known and is_known_term(span, known):
            dropped["known_term"] += 1
        elif result.entity_type == "DATE_TIME" and not is_calendar_date(span):
            dropped["not_a_date"] += 1
        elif result.entity_type == "URL" and not is_plausible_url(span):
            dropped["not_a_url"] += 1
        else:
            kept.append(result)
    return kept, dropped
