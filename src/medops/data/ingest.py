"""Read recipe sources into records; anything unusable is quarantined with a reason.

A bad record is never dropped silently: the counts must add up (rows in = kept +
quarantined), so an auditor can tell a lost row from a rejected one. Errors and
quarantine entries name row ids and columns, never the record text.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from medops.assets import read_bytes
from medops.recipe import Columns, Source

logger = logging.getLogger(__name__)

_DELIMITERS = {"tsv": "\t", "csv": ","}


class SourceError(ValueError):
    """A source that cannot be read as configured; names the source, never a record's text."""


@dataclass(frozen=True)
class Record:
    id: str
    source: str
    role: str
    text: str
    label: str
    # data.columns.extra values (non-PHI, e.g. a drug name): carried, never de-identified
    fields: dict[str, str] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class Quarantined:
    id: str
    source: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"id": self.id, "source": self.source, "reason": self.reason}


@dataclass
class Ingested:
    """One source after reading: its records, rejects, and what the manifest needs."""

    name: str
    sha256: str
    rows_in: int = 0
    cp1252_fallback: bool = False
    records: list[Record] = field(default_factory=list)
    quarantined: list[Quarantined] = field(default_factory=list)
    terms: set[str] = field(default_factory=set)


def source_name(source: Source) -> str:
    """The URI (plus ``#member`` for a zip member): stable across machines."""
    return f"{source.uri}#{source.member}" if source.member else source.uri


def decode(data: bytes, name: str) -> tuple[str, bool]:
    """UTF-8 (BOM tolerated), else cp1252: Windows exports are common for hand-made CSVs."""
    try:
        return data.decode("utf-8-sig"), False
    except UnicodeDecodeError:
        logger.warning("prepare: %s is not UTF-8; decoding as cp1252", name)
        return data.decode("cp1252", errors="replace"), True


def _value(raw: dict[str, Any], column: str) -> str:
    value = raw.get(column)
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def _to_record(
    raw: dict[str, Any],
    number: int,
    source: Source,
    columns: Columns,
    out: Ingested,
    term_columns: Sequence[str],
) -> None:
    """Append one raw row to ``out`` as a record or a quarantine entry."""
    out.rows_in += 1
    out.terms.update(v for c in term_columns if (v := _value(raw, c).strip()))
    source_id = _value(raw, columns.id).strip()
    if not source_id:
        out.quarantined.append(Quarantined(f"{source.role}:row-{number}", out.name, "missing_id"))
        return
    row_id = f"{source.role}:{source_id}"
    text, label = _value(raw, columns.text), _value(raw, columns.label)
    reason = "missing_text" if not text.strip() else "missing_label" if not label.strip() else ""
    if reason:
        out.quarantined.append(Quarantined(row_id, out.name, reason))
        return
    extra = {name: _value(raw, column).strip() for name, column in columns.extra.items()}
    out.records.append(Record(row_id, out.name, source.role, text, label, extra))


def _check_columns(
    present: list[str], columns: Columns, name: str, term_columns: Sequence[str]
) -> None:
    wanted = [columns.id, columns.text, columns.label, *columns.extra.values(), *term_columns]
    missing = [c for c in wanted if c not in present]
    if missing:
        shown = ", ".join(repr(c) for c in present)
        raise SourceError(
            f"source {name}: mapped column(s) {', '.join(repr(c) for c in missing)} not found; "
            f"columns present: {shown}. Fix data.columns or deid.keep_terms_from in the recipe."
        )


def _read_delimited(
    text: str, source: Source, columns: Columns, out: Ingested, term_columns: Sequence[str]
) -> None:
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=_DELIMITERS[source.format])
    try:
        _check_columns(list(reader.fieldnames or []), columns, out.name, term_columns)
        for number, raw in enumerate(reader, start=1):
            _to_record(raw, number, source, columns, out, term_columns)
    except csv.Error as error:
        raise SourceError(
            f"source {out.name}: unreadable {source.format} near line {reader.line_num}: {error}"
        ) from None


def _read_jsonl(
    text: str, source: Source, columns: Columns, out: Ingested, term_columns: Sequence[str]
) -> None:
    seen_keys: set[str] = set()
    # split on "\n" only: str.splitlines() also breaks on U+2028, which JSON strings may hold
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError:
            raw = None
        if not isinstance(raw, dict):
            out.rows_in += 1
            out.quarantined.append(
                Quarantined(f"{source.role}:line-{number}", out.name, "bad_json")
            )
            continue
        seen_keys.update(raw)
        _to_record(raw, number, source, columns, out, term_columns)
    if seen_keys:
        _check_columns(sorted(seen_keys), columns, out.name, term_columns)


def _quarantine_duplicate_ids(out: Ingested, seen: set[str]) -> None:
    """Keep the first record per row id; a second would make lineage ambiguous."""
    kept = []
    for record in out.records:
        if record.id in seen:
            out.quarantined.append(Quarantined(record.id, out.name, "duplicate_id"))
        else:
            seen.add(record.id)
            kept.append(record)
    out.records = kept


def ingest_source(
    source: Source, columns: Columns, seen_ids: set[str], term_columns: Sequence[str] = ()
) -> Ingested:
    """Read one source: bytes -> text -> rows -> records or quarantine entries.

    ``seen_ids`` is shared across sources, so two sources of one role cannot both claim
    a row id.
    """
    name = source_name(source)
    data = read_bytes(source.uri, source.member)
    text, fallback = decode(data, name)
    out = Ingested(name=name, sha256=hashlib.sha256(data).hexdigest(), cp1252_fallback=fallback)
    reader = _read_jsonl if source.format == "jsonl" else _read_delimited
    reader(text, source, columns, out, term_columns)
    _quarantine_duplicate_ids(out, seen_ids)
    return out


def ingest(
    sources: list[Source], columns: Columns, term_columns: Sequence[str] = ()
) -> list[Ingested]:
    """Read every source; ``term_columns`` values are gathered as non-PHI vocabulary."""
    seen_ids: set[str] = set()
    return [ingest_source(source, columns, seen_ids, term_columns) for source in sources]
