from __future__ import annotations

import os
import random
import subprocess
import sys
from dataclasses import replace

import pytest

from medops.data.clean import (
    NEAR_DUPLICATE_JACCARD,
    clean_label,
    clean_records,
    clean_text,
    dedupe,
    keep_classes,
    near_dedupe,
    normalise,
    remove_control_chars,
    select_classes,
    shingles,
    strip_wrapping_quotes,
    unescape_html,
)
from medops.data.ingest import Quarantined, Record


def rec(
    id_: str, text: str = "a long enough review text", label: str = "Acne", role: str = "train"
):
    return Record(id=f"{role}:{id_}", source="src", role=role, text=text, label=label)


def test_strip_wrapping_quotes_removes_one_csv_pair_only():
    assert strip_wrapping_quotes(' "Was on it for a week" ') == "Was on it for a week"
    assert strip_wrapping_quotes('""quoted""') == '"quoted"'
    assert strip_wrapping_quotes('He said "hi"') == 'He said "hi"'
    assert strip_wrapping_quotes('"') == '"'


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("didn&#039;t", "didn't"),
        ("didn&amp;#039;t", "didn't"),
        ("a &amp;amp;amp; b", "a & b"),
        ("couldn&rsquo;t", "couldn\u2019t"),
        ("don%u2019t", "don\u2019t"),
        ("%uD83D%uDE00", "\U0001f600"),
    ],
)
def test_unescape_html_repeats_until_stable(raw: str, expected: str):
    assert unescape_html(raw) == expected


def test_remove_control_chars_keeps_whitespace_as_space():
    assert remove_control_chars("a\x00b\x07c\u200bd") == "abcd"
    assert remove_control_chars("a\tb\nc") == "a b c"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("<b>bold</b> and<br/>more", "bold and more"),
        ("&lt;i&gt;escaped tag&lt;/i&gt;", "escaped tag"),
        ("dose < 5 mg and > 2 mg <3", "dose < 5 mg and > 2 mg <3"),
        ("cafe\u0301", "caf\u00e9"),
        ("  many   spaces\r\n\tand\xa0lines  ", "many spaces and lines"),
        ('"Was on it &amp;#039;til May"', "Was on it 'til May"),
    ],
)
def test_clean_text(raw: str, expected: str):
    assert clean_text(raw) == expected


def test_clean_label_strips_then_maps():
    mapping = {"Bipolar Disorde": "Bipolar Disorder"}
    assert clean_label("  Bipolar Disorde ", mapping) == "Bipolar Disorder"
    assert clean_label("Acne", mapping) == "Acne"


def test_clean_records_quarantines_short_text_and_empty_label():
    records = [rec("1"), rec("2", text='"  tiny &amp; "'), rec("3", label="   ")]
    kept, quarantined = clean_records(records, {}, min_chars=10, max_chars=100)
    assert [r.id for r in kept] == ["train:1"]
    assert {(q.id, q.reason) for q in quarantined} == {
        ("train:2", "text_too_short"),
        ("train:3", "missing_label"),
    }


def test_select_classes_top_k_counts_train_only_and_breaks_ties_by_name():
    records = (
        [rec(f"b{i}", label="Beta") for i in range(2)]
        + [rec(f"a{i}", label="Alpha") for i in range(2)]
        + [rec(f"c{i}", label="Gamma") for i in range(3)]
        + [rec(f"t{i}", label="Delta", role="test") for i in range(9)]
    )
    assert select_classes(records, None, 2) == ["Alpha", "Gamma"]
    assert select_classes(records, ["Zeta", "Beta"], 2) == ["Beta", "Zeta"]


def test_keep_classes_quarantines_other_labels_in_both_roles():
    records = [rec("1"), rec("2", label="Gout"), rec("3", label="Gout", role="test")]
    kept, quarantined = keep_classes(records, ["Acne"])
    assert [r.id for r in kept] == ["train:1"]
    assert [(q.id, q.reason) for q in quarantined] == [
        ("train:2", "label_out_of_scope"),
        ("test:3", "label_out_of_scope"),
    ]


def test_dedupe_keeps_test_copy_and_is_case_insensitive():
    records = [
        rec("1", text="Same Review Text"),
        rec("2", text="same review text", role="test"),
        rec("3", text="SAME REVIEW TEXT", role="test"),
        rec("4", text="another review"),
    ]
    kept, quarantined = dedupe(records)
    assert {r.id for r in kept} == {"test:2", "train:4"}
    assert {(q.id, q.reason) for q in quarantined} == {
        ("train:1", "duplicate"),
        ("test:3", "duplicate"),
    }


REVIEW = (
    "I started this pill three months ago for my skin. The first two weeks were rough, "
    "with dryness and peeling around my nose, but by week six the breakouts had mostly "
    "stopped and my doctor says we can lower the dose next visit."
)
OTHER = (
    "Took it for back pain after surgery. It helped a little with the pain at night but "
    "made me dizzy and constipated, so I switched to something else within ten days."
)


def test_normalise_casefolds_drops_punctuation_and_collapses_space():
    assert normalise("  It's GREAT!!  Really\u2014great...  ") == "its great reallygreat"
    assert normalise("snake_case + 5 mg & more") == "snakecase + 5 mg more"  # + is a symbol


def test_shingles_are_the_same_in_another_process():
    code = "from medops.data.clean import shingles; print(shingles('Review: ok, fine.').tolist())"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == str(shingles("Review: ok, fine.").tolist())


@pytest.mark.parametrize(
    "copy",
    [
        REVIEW.upper().replace(",", "").replace(".", " !"),  # normalised text equal
        REVIEW.replace("three", "four"),  # one word changed
        REVIEW.replace("nose", "noze"),  # a typo
        REVIEW + " Update: still fine.",  # a short addition
    ],
)
def test_near_dedupe_catches_small_edits(copy: str):
    kept, quarantined = near_dedupe([rec("1", text=REVIEW), rec("2", text=copy)])
    assert [r.id for r in kept] == ["train:1"]
    assert quarantined == [Quarantined("train:2", "src", "near_duplicate")]


def test_near_dedupe_keeps_unrelated_and_loosely_related_texts():
    half = REVIEW[: len(REVIEW) // 2] + OTHER[len(OTHER) // 2 :]
    records = [rec("1", text=REVIEW), rec("2", text=OTHER), rec("3", text=half)]
    kept, quarantined = near_dedupe(records)
    assert [r.id for r in kept] == ["train:1", "train:2", "train:3"] and not quarantined


def test_near_dedupe_keeps_the_test_copy_and_conserves_rows():
    records = [
        rec("1", text=REVIEW.replace("three", "four")),
        rec("2", text=OTHER),
        rec("3", text=REVIEW, role="test"),
        rec("4", text=OTHER + " Never again.", role="test"),
    ]
    kept, quarantined = near_dedupe(records)
    assert {r.id for r in kept} == {"test:3", "test:4"}
    assert {q.id for q in quarantined} == {"train:1", "train:2"}
    assert len(kept) + len(quarantined) == len(records)


def _brute_force(records: list[Record]) -> list[str]:
    """The definition: in test-first order, keep every test row and drop a train row near
    any kept one."""
    kept: list[tuple[str, set[int]]] = []
    ids = []
    for record in sorted(records, key=lambda r: r.role != "test"):
        form = normalise(record.text)
        own = set(shingles(form).tolist())
        if record.role != "test" and any(
            form == other or len(own & seen) >= NEAR_DUPLICATE_JACCARD * len(own | seen)
            for other, seen in kept
        ):
            continue
        kept.append((form, own))
        ids.append(record.id)
    return ids


def test_near_dedupe_matches_brute_force_and_is_deterministic():
    rng = random.Random(7)
    words = REVIEW.split() + OTHER.split()
    texts: list[str] = []
    for _ in range(300):
        if texts and rng.random() < 0.4:  # a copy with 0-4 words replaced
            edited = rng.choice(texts).split()
            for _ in range(rng.randint(0, 4)):
                edited[rng.randrange(len(edited))] = rng.choice(words)
            texts.append(" ".join(edited))
        else:
            texts.append(" ".join(rng.choices(words, k=rng.randint(10, 60))))
    records = [rec(str(i), text=t, role=rng.choice(["train", "test"])) for i, t in enumerate(texts)]
    kept, quarantined = near_dedupe(records)
    assert [r.id for r in kept] == _brute_force(records)
    assert 20 < len(quarantined) < 150
    assert all(q.id.startswith("train:") for q in quarantined)
    # kept test rows include near-duplicates of each other: as train rows, some would go
    as_train = [replace(r, role="train") for r in kept if r.role == "test"]
    assert near_dedupe(as_train)[1]
    again = near_dedupe(records)
    assert (kept, quarantined) == again


def _jaccard(a: str, b: str) -> float:
    one, two = set(shingles(normalise(a)).tolist()), set(shingles(normalise(b)).tolist())
    return len(one & two) / len(one | two)


# ICD-10-CM-style diagnosis titles: sides and displacement make distinct records
SHORT_LEFT, SHORT_RIGHT = "Fracture of left femur, closed", "Fracture of right femur, closed"
LONG_LEFT = (
    "Displaced comminuted fracture of shaft of left femur, subsequent encounter for open "
    "fracture type IIIA, IIIB, or IIIC with delayed healing; intramedullary nail in place, "
    "partial weight bearing with crutches"
)
LONG_RIGHT = LONG_LEFT.replace("left", "right")
DISPLACED = (
    "Displaced comminuted fracture of shaft of left femur, subsequent encounter for closed "
    "fracture with routine healing"
)
NONDISPLACED = DISPLACED.replace("Displaced", "Nondisplaced")


def test_near_dedupe_never_drops_a_test_row_for_resembling_another_test_row():
    # the long pairs are near-duplicates by the 5-gram rule; the short pair is not
    assert _jaccard(LONG_LEFT, LONG_RIGHT) >= NEAR_DUPLICATE_JACCARD
    assert _jaccard(DISPLACED, NONDISPLACED) >= NEAR_DUPLICATE_JACCARD
    texts = [SHORT_LEFT, SHORT_RIGHT, LONG_LEFT, LONG_RIGHT, DISPLACED, NONDISPLACED]
    texts += ["fracture of LEFT femur (closed)"]  # normalised text equal to SHORT_LEFT
    records = [rec(str(i), text=t, role="test") for i, t in enumerate(texts)]
    kept, quarantined = near_dedupe(records)
    assert kept == records and quarantined == []


def test_near_dedupe_drops_train_rows_near_any_test_row():
    near_left = LONG_LEFT.replace("crutches", "a walker")
    assert _jaccard(near_left, LONG_LEFT) >= NEAR_DUPLICATE_JACCARD
    records = [
        rec("1", text=near_left),
        rec("2", text="fracture of right femur - closed"),  # normalised equal to a test row
        rec("3", text=NONDISPLACED + "."),
        rec("4", text=REVIEW),
        rec("5", text=SHORT_LEFT.replace("femur", "tibia")),  # Jaccard well below 0.9
        rec("6", text=SHORT_LEFT, role="test"),
        rec("7", text=SHORT_RIGHT, role="test"),
        rec("8", text=LONG_LEFT, role="test"),
        rec("9", text=LONG_RIGHT, role="test"),
        rec("10", text=DISPLACED, role="test"),
    ]
    kept, quarantined = near_dedupe(records)
    assert [r.id for r in kept] == [
        "test:6", "test:7", "test:8", "test:9", "test:10", "train:4", "train:5"
    ]  # fmt: skip
    assert quarantined == [
        Quarantined(f"train:{i}", "src", "near_duplicate") for i in ("1", "2", "3")
    ]


def test_near_dedupe_is_the_same_in_another_process():
    code = (
        "from medops.data.clean import near_dedupe\n"
        "from medops.data.ingest import Record\n"
        "texts = [f'Fracture {w} of {s} femur, closed, case {n % 7}' for n, (w, s) in "
        "enumerate((w, s) for w in ('one', 'two', 'three') for s in ('left', 'right'))] * 3\n"
        "rows = [Record(f'{r}:{i}', 's', r, t, 'A') for i, t in enumerate(texts) "
        "for r in ('train', 'test')]\n"
        "kept, gone = near_dedupe(rows)\n"
        "print([r.id for r in kept], [q.id for q in gone])"
    )
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    }
    assert len(outs) == 1 and "train:" in outs.pop()
