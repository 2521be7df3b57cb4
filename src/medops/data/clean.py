"""Text and label cleaning, class selection and de-duplication.

Each step returns (kept, quarantined) so every row that leaves the pipeline carries a
reason. Rules come from the real Drugs.com export: texts wrapped in literal CSV quotes,
HTML entities escaped once or twice (``&amp;#039;``), and truncated labels.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import replace

from medops.data.ingest import Quarantined, Record

_TAG = re.compile(r"<!--.*?-->|</?[A-Za-z][^<>]*>", re.DOTALL)
_PERCENT_U = re.compile(r"%u([0-9A-Fa-f]{4})")
_MAX_UNESCAPE = 10

Result = tuple[list[Record], list[Quarantined]]


def strip_wrapping_quotes(text: str) -> str:
    """Drop one pair of double quotes around the whole text (a CSV quoting artifact)."""
    text = text.strip()
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        return text[1:-1]
    return text


def _decode_percent_u(text: str) -> str:
    """``%u2019`` -> ``’``; split surrogate pairs (emoji) recombine, lone halves -> U+FFFD."""
    if "%u" not in text:
        return text
    decoded = _PERCENT_U.sub(lambda m: chr(int(m.group(1), 16)), text)
    return decoded.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def unescape_html(text: str) -> str:
    """Unescape until stable: the source double-escapes some entities (``&amp;#039;``).

    JavaScript ``escape()`` leftovers (``don%u2019t``) are decoded too.
    """
    for _ in range(_MAX_UNESCAPE):
        unescaped = _decode_percent_u(html.unescape(text))
        if unescaped == text:
            break
        text = unescaped
    return text


def remove_control_chars(text: str) -> str:
    """Whitespace controls become spaces; other control, format and surrogate chars go."""
    return "".join(
        " " if ch.isspace() else ch
        for ch in text
        if ch.isspace() or unicodedata.category(ch) not in ("Cc", "Cf", "Cs")
    )


def clean_text(text: str) -> str:
    text = unescape_html(strip_wrapping_quotes(text))
    text = _TAG.sub(" ", text)
    text = unicodedata.normalize("NFC", remove_control_chars(text))
    return " ".join(text.split())


def clean_label(label: str, label_map: Mapping[str, str]) -> str:
    label = label.strip()
    return label_map.get(label, label).strip()


def clean_records(
    records: Iterable[Record], label_map: Mapping[str, str], min_chars: int
) -> Result:
    kept, quarantined = [], []
    for record in records:
        text, label = clean_text(record.text), clean_label(record.label, label_map)
        reason = "missing_label" if not label else "text_too_short" if len(text) < min_chars else ""
        if reason:
            quarantined.append(Quarantined(record.id, record.source, reason))
        else:
            kept.append(replace(record, text=text, label=label))
    return kept, quarantined


def select_classes(
    records: Iterable[Record], classes: list[str] | None, top_k: int | None
) -> list[str]:
    """The explicit list, else the ``top_k`` most frequent train labels (ties by name).

    Only train-role rows vote, so the held-out test set never shapes the task.
    """
    if classes:
        return sorted(set(classes))
    counts = Counter(r.label for r in records if r.role == "train")
    ranked = sorted(counts, key=lambda label: (-counts[label], label))
    return sorted(ranked[:top_k] if top_k else ranked)


def keep_classes(records: Iterable[Record], classes: list[str]) -> Result:
    wanted = set(classes)
    kept, quarantined = [], []
    for record in records:
        if record.label in wanted:
            kept.append(record)
        else:
            quarantined.append(Quarantined(record.id, record.source, "label_out_of_scope"))
    return kept, quarantined


def dedupe(records: Iterable[Record]) -> Result:
    """Drop repeated texts (casefolded); test rows claim a text first.

    A train copy of a test row would leak the answer into training, so the test copy wins.
    """
    ordered = sorted(records, key=lambda r: r.role != "test")
    seen: set[str] = set()
    kept, quarantined = [], []
    for record in ordered:
        key = record.text.casefold()
        if key in seen:
            quarantined.append(Quarantined(record.id, record.source, "duplicate"))
        else:
            seen.add(key)
            kept.append(record)
    return kept, quarantined
