"""Bad inputs through the whole prepare stage: clear errors, and no row lost."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medops.data.ingest import SourceError
from medops.data.prepare import prepare

MEGABYTE_NOTE = "Patient stable, no change. " * 40_000  # ~1 MB


def _good(prefix: str, label: str, count: int) -> list[dict]:
    return [
        {"id": f"{prefix}{i}", "text": f"Review number {prefix}{i} about {label}", "label": label}
        for i in range(count)
    ]


def _quarantine(out: Path) -> dict[str, str]:
    lines = (out / "quarantine.jsonl").read_text(encoding="utf-8").splitlines()
    return {row["id"]: row["reason"] for row in map(json.loads, lines)}


def test_every_bad_line_is_quarantined_with_its_reason(tmp_path: Path, write_jsonl, recipe_for):
    bad = [
        "{not json",
        "[1, 2]",
        {"id": "empty", "text": "   ", "label": "Acne"},
        {"id": "nolabel", "text": "a review with no label at all"},
        {"id": "huge", "text": MEGABYTE_NOTE, "label": "Acne"},
        {"id": "short", "text": "tiny", "label": "Pain"},
        {"text": "a row without any id", "label": "Pain"},
    ]
    train = write_jsonl(
        tmp_path / "train.jsonl", _good("a", "Acne", 8) + _good("p", "Pain", 8) + bad
    )
    test = write_jsonl(tmp_path / "test.jsonl", _good("ta", "Acne", 3) + _good("tp", "Pain", 3))
    out = tmp_path / "prepared"
    counts = prepare(recipe_for(train, test, fmt="jsonl", max_chars=50_000), out).counts

    assert counts["rows_in"] == 16 + len(bad) + 6
    assert counts["rows_in"] == counts["rows_kept"] + counts["rows_quarantined"]
    assert counts["rows_kept"] == 22
    quarantined = _quarantine(out)
    assert quarantined == {
        "train:line-17": "bad_json",
        "train:line-18": "bad_json",
        "train:empty": "missing_text",
        "train:nolabel": "missing_label",
        "train:huge": "text_too_long",
        "train:short": "text_too_short",
        "train:row-23": "missing_id",
    }
    # quarantine holds ids and reasons only
    assert "Patient stable" not in (out / "quarantine.jsonl").read_text(encoding="utf-8")


def test_a_megabyte_note_within_max_chars_is_de_identified_whole(
    tmp_path: Path, write_jsonl, recipe_for
):
    note = MEGABYTE_NOTE[:300_000] + " Call Dr. Zebulon Quaxley at 617-555-0142."
    train = write_jsonl(
        tmp_path / "train.jsonl",
        _good("a", "Acne", 8)
        + _good("p", "Pain", 8)
        + [{"id": "long", "text": note, "label": "Pain"}],
    )
    test = write_jsonl(tmp_path / "test.jsonl", _good("ta", "Acne", 3) + _good("tp", "Pain", 3))
    out = tmp_path / "prepared"
    counts = prepare(recipe_for(train, test, fmt="jsonl", max_chars=400_000), out).counts
    assert counts["rows_quarantined"] == 0
    written = "".join(
        (out / f"{s}.jsonl").read_text(encoding="utf-8") for s in ("train", "validation")
    )
    assert "Quaxley" not in written and "617-555-0142" not in written
    assert "Dr. [NAME] at [CONTACT]" in written


def test_wrong_encoding_is_decoded_and_counted(tmp_path: Path, recipe_for):
    rows = _good("a", "Acne", 8) + _good("p", "Pain", 8)
    rows.append({"id": "accent", "text": "Le café m'a aidé pour la Pain", "label": "Pain"})
    lines = ["id\ttext\tlabel", *(f"{r['id']}\t{r['text']}\t{r['label']}" for r in rows)]
    train = tmp_path / "train.tsv"
    train.write_bytes("\n".join(lines).encode("cp1252"))
    test = tmp_path / "test.tsv"
    test.write_text(
        "id\ttext\tlabel\n" + "\n".join(f"{r['id']}\t{r['text']}\t{r['label']}" for r in
                                        _good("ta", "Acne", 3) + _good("tp", "Pain", 3)),
        encoding="utf-8",
    )  # fmt: skip
    out = tmp_path / "prepared"
    counts = prepare(recipe_for(train, test), out).counts
    assert counts["sources_decoded_cp1252"] == 1 and counts["rows_quarantined"] == 0
    written = "".join(
        (out / f"{s}.jsonl").read_text(encoding="utf-8") for s in ("train", "validation")
    )
    assert "Le café m'a aidé" in written


def test_missing_column_and_missing_file_are_errors_naming_what_to_fix(
    tmp_path: Path, write_jsonl, recipe_for
):
    train = write_jsonl(tmp_path / "train.jsonl", [{"id": 1, "body": "text", "label": "Acne"}])
    test = write_jsonl(tmp_path / "test.jsonl", [{"id": 1, "body": "text", "label": "Acne"}])
    with pytest.raises(SourceError, match="'text'"):
        prepare(recipe_for(train, test, fmt="jsonl"), tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="nowhere.jsonl does not exist"):
        prepare(recipe_for(tmp_path / "nowhere.jsonl", test, fmt="jsonl"), tmp_path / "out")
