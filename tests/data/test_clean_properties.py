"""Properties of the cleaners over generated text: what holds for any input, not examples."""

from __future__ import annotations

import unicodedata
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from medops.data.clean import (
    clean_records,
    clean_text,
    dedupe,
    keep_classes,
    near_dedupe,
    normalise,
)
from medops.data.ingest import Record

# any code point, plus the raw material of the source's artefacts: entities, tags,
# %u escapes, quotes, controls and combining marks
ARTEFACTS = st.sampled_from(
    ["&amp;", "&#039;", "&amp;#039;", "<br/>", "<b>", "</p>", "%u2019", '"', "\r\n", "\t",
     "\x00", "\u200b", "e\u0301", "\ud83d", "  "]
)  # fmt: skip
TEXT = st.lists(st.one_of(st.text(max_size=8), ARTEFACTS), max_size=12).map("".join)
SHORT = st.text(alphabet="abcAB .,!", max_size=12)


def _records(draws: list[tuple[str, str, str]]) -> list[Record]:
    return [
        Record(f"{role}:{i}", "src", role, text, label)
        for i, (text, label, role) in enumerate(draws)
    ]


ROWS = st.lists(
    st.tuples(st.one_of(SHORT, TEXT), st.sampled_from(["Acne", "Pain", " Pain ", ""]),
              st.sampled_from(["train", "test"])),
    max_size=30,
).map(_records)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(TEXT)
def test_clean_text_leaves_normalised_single_spaced_printable_text(raw: str):
    text = clean_text(raw)
    assert unicodedata.is_normalized("NFC", text)
    assert text == text.strip() and "  " not in text
    assert not [ch for ch in text if ch.isspace() and ch != " "]
    assert not [ch for ch in text if unicodedata.category(ch) in ("Cc", "Cf", "Cs")]
    assert "&amp;" not in text and "<br/>" not in text and "%u2019" not in text


@settings(max_examples=300, deadline=None)
@given(TEXT)
def test_clean_text_is_stable_once_no_wrapping_quotes_remain(raw: str):
    once = clean_text(raw)
    if not (once.startswith('"') and once.endswith('"') and len(once) >= 2):
        assert clean_text(once) == once


@settings(max_examples=300, deadline=None)
@given(TEXT)
def test_normalise_is_idempotent_and_drops_punctuation(raw: str):
    form = normalise(raw)
    assert normalise(form) == form
    assert not [ch for ch in form if unicodedata.category(ch).startswith("P")]


def _conserved(rows: list[Record], kept: list[Record], quarantined) -> None:
    """Every input row is either kept or quarantined, exactly once."""
    assert Counter(r.id for r in rows) == Counter(
        [r.id for r in kept] + [q.id for q in quarantined]
    )


@settings(max_examples=150, deadline=None)
@given(ROWS)
def test_every_cleaning_step_keeps_or_quarantines_each_row_once(rows: list[Record]):
    kept, rejected = clean_records(rows, {"Pain": "Pain"}, min_chars=3, max_chars=40)
    _conserved(rows, kept, rejected)
    assert all(q.reason in {"missing_label", "text_too_short", "text_too_long"} for q in rejected)
    assert all(r.label and 3 <= len(r.text) <= 40 for r in kept)

    in_scope, out_of_scope = keep_classes(kept, ["Acne"])
    _conserved(kept, in_scope, out_of_scope)

    unique, duplicates = dedupe(kept)
    _conserved(kept, unique, duplicates)
    assert len({r.text.casefold() for r in unique}) == len(unique)
    # a text in the test role is never lost to a train copy
    test_texts = {r.text.casefold() for r in kept if r.role == "test"}
    assert test_texts <= {r.text.casefold() for r in unique if r.role == "test"}

    distinct, near = near_dedupe(unique)
    _conserved(unique, distinct, near)
    assert all(q.reason == "near_duplicate" for q in near)
    # held-out rows are never dropped for resembling one another (or anything else)
    assert [r for r in unique if r.role == "test"] == [r for r in distinct if r.role == "test"]
    # a kept train row shares its normalised text with no other kept row, train or test
    forms = Counter(normalise(r.text) for r in distinct)
    assert all(forms[normalise(r.text)] == 1 for r in distinct if r.role == "train")
    # no kept train row is a near-duplicate of another kept row: a second pass keeps all
    assert near_dedupe(distinct)[1] == []
