from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from medops.data.ingest import SourceError, ingest, ingest_source
from medops.recipe import Columns, Source

COLUMNS = Columns(id="id", text="text", label="label")


def reasons(result) -> dict[str, str]:
    return {q.id: q.reason for q in result.quarantined}


def test_tsv_with_unnamed_id_column_like_the_demo(tmp_path: Path, write_tsv):
    path = write_tsv(
        tmp_path / "t.tsv",
        [{"": "7", "review": '"Line one\nline two"', "condition": "Acne", "rating": "9"}],
    )
    result = ingest_source(
        Source(uri=str(path)), Columns(id="", text="review", label="condition"), set()
    )
    assert result.rows_in == 1
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
    assert result.rows_in == 5
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
    assert [len(r.records) for r in results] == [1, 0, 1]
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
    assert result.rows_in == 5
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
    assert result.name == f"{archive}#inner.csv"
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert result.records[0].text == "a review, with a comma"


def test_cp1252_fallback_is_flagged(tmp_path: Path):
    path = tmp_path / "t.csv"
    path.write_bytes("id,text,label\n1,caf\u00e9 review \u2019ok,Acne\n".encode("cp1252"))
    result = ingest_source(Source(uri=str(path), format="csv"), COLUMNS, set())
    assert result.cp1252_fallback
    assert result.records[0].text == "caf\u00e9 review \u2019ok"


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
