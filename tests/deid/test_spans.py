"""Merging detections into non-overlapping category spans, and redacting them."""

from __future__ import annotations

from medops.deid.spans import Detection, Span, merge, redact, trimmed


def test_overlaps_merge_and_a_pattern_outranks_the_ner_model() -> None:
    spans = merge(
        [
            Detection(53, 68, "ORGANIZATION", 0.7),  # "CHU de Bordeaux" (pattern)
            Detection(60, 68, "LOCATION", 0.85, pattern=False),  # "Bordeaux" (spaCy)
            Detection(0, 5, "NAME", 0.85),
            Detection(3, 9, "NAME", 0.6),
            Detection(20, 30, "DATE", 0.95),
            Detection(20, 30, "ID", 0.45),
        ]
    )
    assert spans == [Span(0, 9, "NAME"), Span(20, 30, "DATE"), Span(53, 68, "ORGANIZATION")]


def test_adjacent_spans_stay_apart_and_empty_ones_vanish() -> None:
    assert merge([Detection(0, 4, "NAME", 0.8), Detection(4, 8, "DATE", 0.8)]) == [
        Span(0, 4, "NAME"),
        Span(4, 8, "DATE"),
    ]
    assert merge([Detection(5, 5, "NAME", 0.9)]) == []


def test_trimmed_drops_blanks_and_trailing_punctuation() -> None:
    text = "Xavier Rush--\n\n   rest"
    assert text.__getitem__(slice(*trimmed(text, 0, 18))) == "Xavier Rush"
    assert trimmed("   ", 0, 3)[0] == trimmed("   ", 0, 3)[1]


def test_redact_replaces_each_span_by_its_category_tag() -> None:
    text = "Dr. Hobbs saw him on 3/4/2020."
    spans = [Span(4, 9, "NAME"), Span(21, 29, "DATE")]
    assert redact(text, spans) == "Dr. [NAME] saw him on [DATE]."
    assert redact(text, []) == text


def test_the_span_classifier_types_a_merged_span_last():
    spacy = Detection(0, 15, "NAME", 0.85, pattern=False)
    learned = Detection(0, 15, "ORGANIZATION", 0.97, pattern=False, learned=True)
    longer = Detection(0, 20, "ORGANIZATION", 0.97, pattern=False, learned=True)
    assert merge([learned, spacy]) == [Span(0, 15, "NAME")]
    assert merge([spacy, longer]) == [Span(0, 20, "NAME")]
    assert merge([longer]) == [Span(0, 20, "ORGANIZATION")]
