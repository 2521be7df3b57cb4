"""De-identify a JSONL file line by line: the library behind ``medops data deid``.

In: ``{"id": ..., "text": ...}`` per line. Out, in input order, one line per input line
that is not blank: ``{"id", "text": <redacted>, "spans": [{"start", "end", "type"}]}``
with offsets in the ORIGINAL text, or ``{"id", "error"}`` when the line cannot be used
(the id, or ``line-N`` when there is none). A bad line never stops the run, and an
error names the problem, never the record's content.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TextIO

from medops.deid.filters import vocabulary
from medops.deid.policy import apply_policy, check_choices
from medops.deid.pseudonyms import Pseudonymizer
from medops.recipe import Deid

CHUNK_LINES = 64
# spaCy refuses longer texts (nlp.max_length) and its memory grows with length
MAX_CHARS = 1_000_000


@dataclass
class DeidCounts:
    """What a run did; printed by the CLI, never holding text."""

    lines_in: int = 0
    blank: int = 0
    ok: int = 0
    errors: int = 0
    spans: Counter[str] = field(default_factory=Counter)
    languages: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)
    dates_redacted: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "lines_in": self.lines_in,
            "blank": self.blank,
            "ok": self.ok,
            "errors": self.errors,
            "spans": dict(sorted(self.spans.items())),
            "languages": dict(sorted(self.languages.items())),
            "dropped": dict(sorted(self.dropped.items())),
            "dates_redacted": self.dates_redacted,
            "seconds": round(self.seconds, 2),
        }


@dataclass(frozen=True)
class _Parsed:
    id: str | int
    text: str | None = None
    error: str | None = None
    patient: str | None = None


def parse_line(raw: bytes, number: int, with_patient: bool = False) -> _Parsed:
    """One input line as a record, or an error naming the id (else ``line-N``).

    ``with_patient`` (pseudonymize) also reads the optional ``patient_id``.
    """
    fallback = f"line-{number}"
    try:
        line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
    except UnicodeDecodeError as error:
        return _Parsed(fallback, error=f"not UTF-8 (byte {error.start})")
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        return _Parsed(fallback, error=f"invalid JSON ({error.msg} at column {error.colno})")
    if not isinstance(record, dict):
        return _Parsed(fallback, error="not a JSON object")
    rid = record.get("id")
    if rid is None:
        return _Parsed(fallback, error="missing 'id'")
    if isinstance(rid, bool) or not isinstance(rid, str | int):
        return _Parsed(fallback, error="'id' must be a string or an integer")
    if "text" not in record:
        return _Parsed(rid, error="missing 'text'")
    if not isinstance(record["text"], str):
        return _Parsed(rid, error="'text' must be a string")
    if len(record["text"]) > MAX_CHARS:
        return _Parsed(rid, error=f"'text' is longer than {MAX_CHARS} characters; split it")
    patient = record.get("patient_id") if with_patient else None
    if patient is not None and (isinstance(patient, bool) or not isinstance(patient, str | int)):
        return _Parsed(rid, error="'patient_id' must be a string or an integer")
    return _Parsed(rid, text=record["text"], patient=None if patient is None else str(patient))


def _process(
    chunk: list[tuple[int, bytes]],
    language: str,
    deid: Deid,
    known: frozenset[str],
    counts: DeidCounts,
    sink: TextIO,
    pseudonymizer: Pseudonymizer | None = None,
) -> None:
    parsed = [parse_line(line, number, pseudonymizer is not None) for number, line in chunk]
    good = [p for p in parsed if p.error is None]
    patients = [str(p.id) if p.patient is None else p.patient for p in good]
    applied = apply_policy(
        [p.text or "" for p in good], patients, deid, known, language, pseudonymizer
    )
    counts.dropped.update(applied.dropped)
    counts.languages.update(applied.languages)
    counts.dates_redacted += applied.dates_redacted
    done = iter(zip(applied.texts, applied.spans, strict=True))
    for record in parsed:
        if record.error is not None:
            counts.errors += 1
            row: dict[str, Any] = {"id": record.id, "error": record.error}
        else:
            text, spans = next(done)
            counts.ok += 1
            counts.spans.update(s.type for s in spans)
            row = {"id": record.id, "text": text, "spans": [s.to_dict() for s in spans]}
        sink.write(json.dumps(row, ensure_ascii=False) + "\n")


def deid_jsonl(
    source: Iterable[bytes],
    sink: TextIO,
    language: str = "en",
    policy: str = "redact",
    deid: Deid | None = None,
    progress: Callable[[DeidCounts], None] | None = None,
    key: bytes | None = None,
) -> DeidCounts:
    """De-identify every line of ``source`` (a file opened in binary) into ``sink``.

    Lines are decoded one by one, so a line that is not UTF-8 becomes an error record.

    ``policy="pseudonymize"`` needs ``key`` (HMAC key, ``pseudonymize.load_key``): spans
    get consistent surrogates, dates are shifted per ``patient_id`` (else per ``id``).

    ``progress`` is called after each chunk of lines (the CLI throttles what it prints).
    """
    pseudonymizer = Pseudonymizer(key) if policy == "pseudonymize" and key is not None else None
    check_choices(language, policy, pseudonymizer)
    deid = deid or Deid()
    known = vocabulary(deid.keep_terms)
    counts, chunk, started = DeidCounts(), [], time.perf_counter()
    for number, line in enumerate(source, start=1):
        counts.lines_in += 1
        if not line.strip():
            counts.blank += 1
            continue
        chunk.append((number, line))
        if len(chunk) == CHUNK_LINES:
            _process(chunk, language, deid, known, counts, sink, pseudonymizer)
            chunk = []
            counts.seconds = time.perf_counter() - started
            if progress:
                progress(counts)
    if chunk:
        _process(chunk, language, deid, known, counts, sink, pseudonymizer)
    counts.seconds = time.perf_counter() - started
    return counts
