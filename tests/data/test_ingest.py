from __future__ import annotations

import hashlib
import zipfile
from codecs import BOM_UTF16_BE
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from medops.data.ingest import Ingested, SourceError, ingest, ingest_source
from medops.recipe import Columns, Source

COLUMNS = Columns(id="id", text="text", label="label")


def reasons(result: Ingested) -> dict[str, str]:
    return {q.id: q.reason for q in result.quarantined}


def balanced(result: Ingested) -> Ingested:
    """Every row read is either kept or quarantined."""
    assert result.rows_in == len(result.records) + len(result.quarantined)
    return result


def test_tsv_with_unnamed_id_column_like_the_demo(tmp_path: Path, write_tsv):
    path = write_tsv(
        tmp_path / "t.tsv",
        [{"": "7", "review": '"Line one\nline two"', "condition": "Acne", "rating": "9"}],
    )
    result = ingest_source(
        Source(uri=str(path)), Columns(id="", text="review", label="condition"), set()
    )
    assert balanced(result).rows_in == 1
    [record] = result.records
    assert (record.id, record.role, record.label) == ("train:7", "train", "Acne")
    assert record.text == '"Line one\nline two"'
    assert result.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_bad_rows_are_quarantined_with_a_reason(tmp_path: Path, write_tsv):
    rows = [
        {"id": "1", "text": "fine review text", "label": "Acne"},
        {"id": "2", "text": "   ", "label": "Acne"},
        {"id": "3", "text": "no label here", "label": ""},
        {"id": "", "text": "no id here", "label": "Acne"},
        {"id": "1", "text": "same id again", "label": "Pain"},
    ]
    result = ingest_source(Source(uri=str(write_tsv(tmp_path / "t.tsv", rows))), COLUMNS, set())
    assert balanced(result).rows_in == 5
    assert [r.id for r in result.records] == ["train:1"]
    assert reasons(result) == {
        "train:2": "missing_text",
        "train:3": "missing_label",
        "train:row-4": "missing_id",
        "train:1": "duplicate_id",
    }


def test_duplicate_ids_across_sources_of_one_role(tmp_path: Path, write_tsv):
    row = [{"id": "1", "text": "fine review text", "label": "Acne"}]
    first = Source(uri=str(write_tsv(tmp_path / "a.tsv", row)))
    second = Source(uri=str(write_tsv(tmp_path / "b.tsv", row)))
    other_role = Source(uri=str(tmp_path / "a.tsv"), role="test")
    results = ingest([first, second, other_role], COLUMNS)
    assert [len(balanced(r).records) for r in results] == [1, 0, 1]
    assert reasons(results[1]) == {"train:1": "duplicate_id"}


def test_jsonl_quarantines_unparseable_lines(tmp_path: Path, write_jsonl):
    path = write_jsonl(
        tmp_path / "t.jsonl",
        [
            {"id": 1, "text": "fine review text", "label": "Acne"},
            "{not json",
            "",
            "[1, 2]",
            {"id": 2, "text": "no label key"},
            '{"id": 3, "text": "line\u2028separator inside", "label": "Pain"}',
        ],
    )
    result = ingest_source(Source(uri=str(path), format="jsonl", role="test"), COLUMNS, set())
    assert balanced(result).rows_in == 5
    assert [r.id for r in result.records] == ["test:1", "test:3"]
    assert reasons(result) == {
        "test:line-2": "bad_json",
        "test:line-4": "bad_json",
        "test:2": "missing_label",
    }


def test_csv_and_zip_member_hash_the_member_bytes(tmp_path: Path):
    data = b'id,text,label\n1,"a review, with a comma",Acne\n'
    archive = tmp_path / "data.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("inner.csv", data)
    source = Source(uri=str(archive), member="inner.csv", format="csv")
    result = ingest_source(source, COLUMNS, set())
    assert balanced(result).name == f"{archive}#inner.csv"
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert result.records[0].text == "a review, with a comma"


CSV = "id,text,label\n1,{},Acne\n"


@pytest.mark.parametrize(
    ("data", "encoding", "replaced", "text"),
    [
        (CSV.format("caf\u00e9 \u2019ok").encode(), "utf-8", 0, "caf\u00e9 \u2019ok"),
        (CSV.format("caf\u00e9").encode("utf-8-sig"), "utf-8", 0, "caf\u00e9"),
        (CSV.format("caf\u00e9 \u2019ok").encode("cp1252"), "cp1252", 0, "caf\u00e9 \u2019ok"),
        # a U+FFFD already in the file is text, not a replaced byte
        (CSV.format("caf\u00e9 \ufffd").encode("utf-16"), "utf-16", 0, "caf\u00e9 \ufffd"),
        (BOM_UTF16_BE + CSV.format("caf\u00e9").encode("utf-16-be"), "utf-16", 0, "caf\u00e9"),
        (
            CSV.format("caf\u00e9 ??").encode("cp1252").replace(b"??", b"\x81\x9d"),
            "cp1252",
            2,
            "caf\u00e9 \ufffd\ufffd",
        ),
    ],
    ids=["utf-8", "utf-8-bom", "cp1252", "utf-16-bom", "utf-16-be-bom", "undefined-in-cp1252"],
)
def test_encoding_is_detected_and_undecodable_bytes_are_counted(
    tmp_path: Path, data: bytes, encoding: str, replaced: int, text: str
):
    path = tmp_path / "t.csv"
    path.write_bytes(data)
    result = balanced(ingest_source(Source(uri=str(path), format="csv"), COLUMNS, set()))
    assert (result.encoding, result.replaced_chars) == (encoding, replaced)
    assert result.cp1252_fallback == (encoding == "cp1252")
    assert [(r.id, r.text, r.label) for r in result.records] == [("train:1", text, "Acne")]


def test_missing_column_error_names_source_column_and_present_columns(tmp_path, write_tsv):
    path = write_tsv(tmp_path / "t.tsv", [{"id": "1", "body": "secret words", "label": "A"}])
    with pytest.raises(SourceError) as error:
        ingest_source(Source(uri=str(path)), COLUMNS, set())
    message = str(error.value)
    assert "'text'" in message and str(path) in message and "'body'" in message
    assert "secret words" not in message


def test_jsonl_with_no_mapped_column_anywhere_is_an_error(tmp_path: Path, write_jsonl):
    path = write_jsonl(tmp_path / "t.jsonl", [{"id": 1, "body": "x", "label": "A"}])
    with pytest.raises(SourceError, match="'text'"):
        ingest_source(Source(uri=str(path), format="jsonl"), COLUMNS, set())


def write_parquet(path: Path, columns: dict[str, list]) -> Path:
    pq.write_table(pa.table(columns), path)
    return path


def test_parquet_values_become_strings_and_nulls_are_missing(tmp_path: Path):
    path = write_parquet(
        tmp_path / "t.parquet",
        {
            "id": [1, 2, 3, None],
            "text": ["first note", None, "third note", "fourth note"],
            "label": ["Acne", "Acne", None, "Pain"],
            "rating": [9, 8, 7, 6],
            "patient": ["p1", "p1", "p2", "p3"],
            "seen": ["2024-01-01", None, None, None],
        },
    )
    columns = Columns(
        id="id",
        text="text",
        label="label",
        patient="patient",
        timestamp="seen",
        extra={"rating": "rating"},
    )
    result = balanced(ingest_source(Source(uri=str(path), format="parquet"), columns, set()))
    assert result.rows_in == 4
    [record] = result.records
    assert (record.id, record.text, record.fields) == ("train:1", "first note", {"rating": "9"})
    assert (record.patient, record.timestamp) == ("p1", "2024-01-01")
    assert reasons(result) == {
        "train:2": "missing_text",
        "train:3": "missing_label",
        "train:row-4": "missing_id",
    }


def test_parquet_missing_column_and_unreadable_file_are_source_errors(tmp_path: Path):
    path = write_parquet(tmp_path / "t.parquet", {"id": [1], "body": ["x"], "label": ["A"]})
    with pytest.raises(SourceError, match="'text'.*columns present: 'id', 'body', 'label'"):
        ingest_source(Source(uri=str(path), format="parquet"), COLUMNS, set())
    path.write_bytes(b"id,text,label\n")
    with pytest.raises(SourceError, match="unreadable parquet"):
        ingest_source(Source(uri=str(path), format="parquet"), COLUMNS, set())


def test_patient_and_timestamp_columns_are_mapped_when_named(tmp_path: Path, write_tsv):
    row = {"id": "1", "text": "a note", "label": "Acne", "pid": " 42 ", "when": "2024-05-01"}
    path = write_tsv(tmp_path / "t.tsv", [row])
    columns = Columns(id="id", text="text", label="label", patient="pid", timestamp="when")
    [record] = balanced(ingest_source(Source(uri=str(path)), columns, set())).records
    assert (record.patient, record.timestamp) == ("42", "2024-05-01")
    [unmapped] = balanced(ingest_source(Source(uri=str(path)), COLUMNS, set())).records
    assert (unmapped.patient, unmapped.timestamp) == ("", "")
    with pytest.raises(SourceError, match="'patient_id'"):
        ingest_source(
            Source(uri=str(path)), COLUMNS.model_copy(update={"patient": "patient_id"}), set()
        )
