"""Read recipe sources into records; anything unusable is quarantined with a reason.

A bad record is never dropped silently: the counts must add up (rows in = kept +
quarantined), so an auditor can tell a lost row from a rejected one. Errors and
quarantine entries name row ids and columns, never the record text.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import pyarrow
import pyarrow.parquet as pq

from medops.assets import read_bytes
from medops.data import fhir
from medops.errors import MedopsError
from medops.recipe import Columns, Source

logger = logging.getLogger(__name__)

_DELIMITERS = {"tsv": "\t", "csv": ","}
# a BOM is the only reliable sign of UTF-16 (without one, its NULs would pass as UTF-8)
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


class SourceError(MedopsError, ValueError):
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
    # PHI-adjacent: used to split by patient, never written to the prepared rows
    patient: str = field(default="", hash=False)
    timestamp: str = field(default="", hash=False)


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
    encoding: str = "utf-8"
    replaced_chars: int = 0  # undecodable byte sequences, each now one U+FFFD
    records: list[Record] = field(default_factory=list)
    quarantined: list[Quarantined] = field(default_factory=list)
    terms: set[str] = field(default_factory=set)

    @property
    def cp1252_fallback(self) -> bool:
        return self.encoding == "cp1252"


def source_name(source: Source) -> str:
    """The URI (plus ``#member`` for a zip member): stable across machines."""
    return f"{source.uri}#{source.member}" if source.member else source.uri


def _decode_replacing(data: bytes, encoding: str) -> tuple[str, int]:
    """Text with undecodable bytes as U+FFFD, and how many were replaced (a U+FFFD that was
    already in the data is not counted: errors="ignore" keeps it too)."""
    text = data.decode(encoding, errors="replace")
    return text, text.count("\ufffd") - data.decode(encoding, errors="ignore").count("\ufffd")


def decode(data: bytes, name: str) -> tuple[str, str, int]:
    """(text, encoding, replaced characters): UTF-16 if it has a BOM, UTF-8 (BOM tolerated),
    else cp1252, as Windows exports are common for hand-made CSVs.

    Nothing is refused: bytes that cp1252 leaves undefined (0x81, 0x8D, 0x8F, 0x90, 0x9D,
    e.g. latin-1 control codes) or broken UTF-16 become U+FFFD, and the third value counts
    them, so the manifest can say how much text was damaged.
    """
    if data.startswith(_UTF16_BOMS):
        encoding = "utf-16"
    else:
        try:
            return data.decode("utf-8-sig"), "utf-8", 0
        except UnicodeDecodeError:
            encoding = "cp1252"
    text, replaced = _decode_replacing(data, encoding)
    if encoding == "cp1252" or replaced:
        logger.warning(
            "prepare: %s decoded as %s, %d character(s) replaced by U+FFFD",
            name,
            encoding,
            replaced,
        )
    return text, encoding, replaced


class _Item(NamedTuple):
    """A parsed row before mapping: its fields, or the quarantine reason it failed with."""

    number: int  # line or entry number: names a row that has no id
    ref: str  # quarantine id (without role) when ``raw`` is a reason
    raw: dict[str, Any] | str


def _value(raw: dict[str, Any], column: str) -> str:
    value = raw.get(column)
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def _optional(raw: dict[str, Any], column: str | None) -> str:
    return "" if column is None else _value(raw, column).strip()


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
    out.records.append(
        Record(
            row_id,
            out.name,
            source.role,
            text,
            label,
            extra,
            patient=_optional(raw, columns.patient),
            timestamp=_optional(raw, columns.timestamp),
        )
    )


def _check_columns(
    present: list[str], columns: Columns, name: str, term_columns: Sequence[str]
) -> None:
    optional = [c for c in (columns.patient, columns.timestamp) if c is not None]
    wanted = [columns.id, columns.text, columns.label, *optional, *columns.extra.values()]
    wanted += term_columns
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


def _read_parquet(
    data: bytes, source: Source, columns: Columns, out: Ingested, term_columns: Sequence[str]
) -> None:
    """Parquet strings are UTF-8 by the format, so no decoding guess; nulls read as missing."""
    try:
        table = pq.ParquetFile(io.BytesIO(data))
        _check_columns(table.schema_arrow.names, columns, out.name, term_columns)
        rows = (row for batch in table.iter_batches() for row in batch.to_pylist())
        for number, raw in enumerate(rows, start=1):
            _to_record(raw, number, source, columns, out, term_columns)
    except pyarrow.ArrowException as error:
        raise SourceError(f"source {out.name}: unreadable parquet: {error}") from None


def _read_items(
    items: Iterable[_Item],
    source: Source,
    columns: Columns,
    out: Ingested,
    term_columns: Sequence[str],
) -> None:
    """Map parsed rows, quarantine the failed ones; a mapped key that no row has is an error."""
    seen_keys: set[str] = set()
    for item in items:
        if isinstance(item.raw, str):
            out.rows_in += 1
            out.quarantined.append(Quarantined(f"{source.role}:{item.ref}", out.name, item.raw))
            continue
        seen_keys.update(item.raw)
        _to_record(item.raw, item.number, source, columns, out, term_columns)
    if seen_keys:
        _check_columns(sorted(seen_keys), columns, out.name, term_columns)


def _json_lines(text: str) -> Iterator[_Item]:
    # split on "\n" only: str.splitlines() also breaks on U+2028, which JSON strings may hold
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError:
            raw = None
        yield _Item(number, f"line-{number}", raw if isinstance(raw, dict) else "bad_json")


def _read_jsonl(
    text: str, source: Source, columns: Columns, out: Ingested, term_columns: Sequence[str]
) -> None:
    _read_items(_json_lines(text), source, columns, out, term_columns)


def _bundle_items(text: str, name: str) -> list[_Item]:
    try:
        resources = fhir.bundle_resources(json.loads(text))
    except (json.JSONDecodeError, fhir.FhirError) as error:
        raise SourceError(f"source {name}: not a FHIR Bundle: {error}") from None
    return [
        _Item(number, f"entry-{number}", r if isinstance(r, dict) else fhir.NOT_FHIR)
        for number, r in enumerate(resources, start=1)
    ]


def _fhir_rows(items: list[_Item], conditions: fhir.Conditions | None) -> Iterator[_Item]:
    """Resources -> DocumentReference rows; a rejected document is quarantined by its own id."""
    for number, ref, raw in items:
        row = raw if isinstance(raw, str) else fhir.document_row(raw, conditions)
        if row is not None:
            named = fhir.document_id(raw) if isinstance(raw, dict) else ""
            yield _Item(number, named or ref, row)


def _read_fhir(
    text: str, source: Source, columns: Columns, out: Ingested, term_columns: Sequence[str]
) -> None:
    """DocumentReferences are rows; the other resources are not counted in rows_in."""
    items = (
        list(_json_lines(text)) if source.format == "fhir-ndjson" else _bundle_items(text, out.name)
    )
    conditions = None
    if columns.label == fhir.LINKED_CONDITION:
        conditions = fhir.linked_conditions([i.raw for i in items if isinstance(i.raw, dict)])
    _read_items(_fhir_rows(items, conditions), source, fhir.columns_for(columns), out, term_columns)


_TEXT_READERS = {
    "tsv": _read_delimited,
    "csv": _read_delimited,
    "jsonl": _read_jsonl,
    "fhir": _read_fhir,
    "fhir-ndjson": _read_fhir,
}


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
    out = Ingested(name=name, sha256=hashlib.sha256(data).hexdigest())
    if source.format == "parquet":
        _read_parquet(data, source, columns, out, term_columns)
    else:
        text, out.encoding, out.replaced_chars = decode(data, name)
        _TEXT_READERS[source.format](text, source, columns, out, term_columns)
    _quarantine_duplicate_ids(out, seen_ids)
    return out


def ingest(
    sources: list[Source], columns: Columns, term_columns: Sequence[str] = ()
) -> list[Ingested]:
    """Read every source; ``term_columns`` values are gathered as non-PHI vocabulary."""
    seen_ids: set[str] = set()
    return [ingest_source(source, columns, seen_ids, term_columns) for source in sources]
