"""Text and label cleaning, class selection and de-duplication (exact and near).

Each step returns (kept, quarantined) so every row that leaves the pipeline carries a
reason. Rules come from the real Drugs.com export: texts wrapped in literal CSV quotes,
HTML entities escaped once or twice (``&amp;#039;``), and truncated labels.
"""

from __future__ import annotations

import html
import operator
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import replace
from fractions import Fraction

import numpy as np
from datasketch import MinHash, MinHashLSH

from medops.data.ingest import Quarantined, Record

# Two rows whose character 5-gram sets overlap this much (Jaccard) are one text.
NEAR_DUPLICATE_JACCARD = 0.9
SHINGLE_CHARS = 5
# odd 64-bit base of the shingle fingerprint polynomial (fixed: same result in every process)
_FINGERPRINT_BASE = np.uint64(0x9E3779B97F4A7C15)
# LSH bands x rows of MinHash values: candidate probability at Jaccard j is 1-(1-j**6)**20
MINHASH_BANDS, MINHASH_ROWS = 20, 6
# datasketch draws its permutations from numpy's legacy RandomState(seed): a frozen stream,
# so the signatures (and the result) are the same on every machine and numpy version
MINHASH_SEED = 1
# punctuation candidates; "_" is punctuation but a word character
_NOT_WORD = re.compile(r"[^\w\s]|_")

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


def _length_reason(text: str, min_chars: int, max_chars: int) -> str:
    if len(text) < min_chars:
        return "text_too_short"
    return "text_too_long" if len(text) > max_chars else ""


def clean_records(
    records: Iterable[Record],
    label_map: Mapping[str, str],
    min_chars: int,
    max_chars: int,
) -> Result:
    kept, quarantined = [], []
    for record in records:
        text, label = clean_text(record.text), clean_label(record.label, label_map)
        reason = "missing_label" if not label else _length_reason(text, min_chars, max_chars)
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


def _test_first(records: Iterable[Record]) -> list[Record]:
    """Input order, test rows first: the order in which rows claim a text."""
    return sorted(records, key=lambda r: r.role != "test")


def dedupe(records: Iterable[Record]) -> Result:
    """Drop repeated texts (casefolded); test rows claim a text first.

    A train copy of a test row would leak the answer into training, so the test copy wins.
    """
    ordered = _test_first(records)
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


def _drop_punctuation(match: re.Match[str]) -> str:
    return "" if unicodedata.category(match[0]).startswith("P") else match[0]


def normalise(text: str) -> str:
    """Casefold, drop punctuation, collapse whitespace: the form near-duplicates share."""
    return " ".join(_NOT_WORD.sub(_drop_punctuation, text.casefold()).split())


def _mix(values: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: spreads fingerprints over all 64 bits (wrapping arithmetic)."""
    values = (values ^ (values >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    values = (values ^ (values >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return values ^ (values >> np.uint64(31))


def shingles(text: str, size: int = SHINGLE_CHARS) -> np.ndarray:
    """Sorted, unique 64-bit fingerprints of the text's character ``size``-grams.

    The whole text is one shingle when shorter than ``size``. Fingerprints rather than
    strings keep 10k rows in tens of MB, and unlike ``hash(str)`` they are the same in
    every process. A collision can only make two rows look a little more alike.
    """
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    width = min(size, len(codes))
    if not width:
        return np.empty(0, dtype=np.uint64)
    count = len(codes) - width + 1
    fingerprints = np.zeros(count, dtype=np.uint64)
    for offset in range(width):
        fingerprints = fingerprints * _FINGERPRINT_BASE + codes[offset : offset + count]
    return np.unique(_mix(fingerprints))


def _signatures(sets: list[np.ndarray]) -> list[MinHash | None]:
    """datasketch MinHash of each fingerprint set (None for an empty set: never indexed).

    The fingerprints are already well-mixed 64-bit hashes, so they feed datasketch's
    64-bit affine permutations as they are (the hash function is the identity).
    """
    signatures = MinHash.generator(
        (values.tolist() for values in sets),
        num_perm=MINHASH_BANDS * MINHASH_ROWS,
        seed=MINHASH_SEED,
        hashfunc=operator.index,
        scheme="affine64",
    )
    return [
        signature if len(values) else None
        for values, signature in zip(sets, signatures, strict=True)
    ]


def _shared(a: np.ndarray, b: np.ndarray) -> int:
    """How many values two sorted, unique arrays have in common."""
    small, large = sorted((a, b), key=len)
    at = np.minimum(np.searchsorted(large, small), len(large) - 1)
    return int(np.count_nonzero(large[at] == small))


def near_dedupe(records: Iterable[Record], threshold: float = NEAR_DUPLICATE_JACCARD) -> Result:
    """Drop train rows whose normalised text repeats a kept row's, or whose 5-gram set
    reaches ``threshold`` (Jaccard) with a kept row's.

    Held-out (test) rows are never dropped here: two test rows that look alike ("left
    femur" / "right femur") are distinct records, and the test set is the user's to keep.
    They are all indexed first, so a train row near any test row is dropped (it would leak
    the answer into training); each other train row is compared with the rows kept so far,
    so no two kept train rows are near-duplicates. Comparing every pair is quadratic;
    datasketch's MinHash LSH picks the pairs to compare (rows sharing one band of a
    120-value MinHash signature) and the true Jaccard of each such pair decides. A pair at
    Jaccard 0.9 escapes comparison with probability (1 - 0.9**6)**20 < 3e-7 (ideal MinHash;
    bench/near_dedupe_compare.py measures it), less above.
    The permutations are seeded, so the result is the same in every process.
    """
    ordered = _test_first(records)
    forms = [normalise(r.text) for r in ordered]
    sets = [shingles(form) for form in forms]
    num, den = Fraction(str(threshold)).as_integer_ratio()

    def near(row: int, other: int) -> bool:
        big, small = sorted((len(sets[row]), len(sets[other])), reverse=True)
        if num * big > den * small:  # sizes alone rule out the threshold
            return False
        shared = _shared(sets[row], sets[other])
        return shared * den >= num * (big + small - shared)

    index = MinHashLSH(
        threshold=threshold,
        num_perm=MINHASH_BANDS * MINHASH_ROWS,
        params=(MINHASH_BANDS, MINHASH_ROWS),
    )
    seen: set[str] = set()
    kept, quarantined = [], []
    for row, (record, signature) in enumerate(zip(ordered, _signatures(sets), strict=True)):
        if record.role != "test":
            candidates = sorted(index.query(signature)) if signature is not None else []
            if forms[row] in seen or any(near(row, other) for other in candidates):
                quarantined.append(Quarantined(record.id, record.source, "near_duplicate"))
                continue
        seen.add(forms[row])
        kept.append(record)
        if signature is not None:
            index.insert(row, signature)
    return kept, quarantined
