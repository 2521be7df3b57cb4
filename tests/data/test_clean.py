from __future__ import annotations

import pytest

from medops.data.clean import (
    clean_label,
    clean_records,
    clean_text,
    dedupe,
    keep_classes,
    remove_control_chars,
    select_classes,
    strip_wrapping_quotes,
    unescape_html,
)
from medops.data.ingest import Record


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
    kept, quarantined = clean_records(records, {}, min_chars=10)
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
