"""Read the recipe's sources for feature computation: table rows or FHIR resources.

Features need columns prepare does not keep (dates, ratings, Patient and Observation
resources), so they read the sources again, with the same byte reader and the same
encoding rules as ingest (``medops.assets``, ``medops.data.ingest.decode``). Nothing is
logged: the rows are raw patient text.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

import pyarrow
import pyarrow.parquet as pq

from medops.assets import read_bytes
from medops.data.fhir import FhirError, bundle_resources
from medops.data.ingest import SourceError, decode, source_name
from medops.recipe import Source

_DELIMITERS = {"tsv": "\t", "csv": ","}


def table_rows(source: Source) -> Iterator[dict[str, Any]]:
    """The rows of a tsv/csv/jsonl/parquet source as dicts (a jsonl line that is not an
    object is skipped: prepare quarantines it, and it can hold no feature)."""
    name = source_name(source)
    data = read_bytes(source.uri, source.member)
    if source.format == "parquet":
        try:
            for batch in pq.ParquetFile(io.BytesIO(data)).iter_batches():
                yield from batch.to_pylist()
        except pyarrow.ArrowException as error:
            raise SourceError(f"source {name}: unreadable parquet: {error}") from None
        return
    text = decode(data, name)[0]
    if source.format == "jsonl":
        for line in text.split("\n"):
            try:
                row = json.loads(line) if line.strip() else None
            except json.JSONDecodeError:
                row = None
            if isinstance(row, dict):
                yield row
        return
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=_DELIMITERS[source.format])
    try:
        yield from reader
    except csv.Error as error:
        raise SourceError(
            f"source {name}: unreadable {source.format} near line {reader.line_num}: {error}"
        ) from None


def table_columns(source: Source) -> list[str]:
    """Column names of a table source (the first row's keys for jsonl), for error messages."""
    first = next(table_rows(source), None)
    return list(first) if first else []


def fhir_resources(source: Source) -> Iterator[dict[str, Any]]:
    """Every resource of a FHIR Bundle or NDJSON source, references resolved as prepare
    resolves them, so a patient is named the same way here and in prepared rows."""
    name = source_name(source)
    text = decode(read_bytes(source.uri, source.member), name)[0]
    if source.format == "fhir":
        try:
            resources = bundle_resources(json.loads(text))
        except (json.JSONDecodeError, FhirError) as error:
            raise SourceError(f"source {name}: not a FHIR Bundle: {error}") from None
        yield from (r for r in resources if isinstance(r, dict))
        return
    for line in text.split("\n"):
        try:
            resource = json.loads(line) if line.strip() else None
        except json.JSONDecodeError:
            continue
        if isinstance(resource, dict) and isinstance(resource.get("resourceType"), str):
            yield resource  # as prepare reads NDJSON: one resource a line, no Bundle
