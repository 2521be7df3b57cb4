"""Benchmark: near-duplicate removal, the former hand-written MinHash LSH vs datasketch's.

``medops.data.clean.near_dedupe`` now takes its LSH candidates from datasketch (and never
drops a test row for resembling another test row). This script keeps a verbatim copy of
the hand-written version it replaced (``legacy_near_dedupe``: its own seeded hash
functions and band buckets, test rows compared with test rows) and measures, on the same
rows in this one process:

* candidate recall: every pair at exact Jaccard >= 0.9 (or equal normalised text), found
  by exact all-pairs intersection counts (a sparse 0/1 matrix product), and how many of
  those pairs each LSH offers as candidates (a missed pair can leave a near-duplicate in);
* rows marked ``near_duplicate`` by: the legacy function as it was (old rule), the legacy
  LSH under the new rule, the datasketch ``near_dedupe`` (new rule), and the greedy rule
  applied to the exact pairs (the reference: what either LSH should reproduce);
* wall time of the old function, of the legacy LSH under the new rule (the like-for-like
  figure) and of the new function (best of ``--repeats``).

Data sets: the demo recipe's rows as ``prepare`` hands them to ``near_dedupe`` (cleaned,
top-8 classes, exact-deduplicated), all cleaned demo rows, the demo rows plus seeded
word-edited copies (many pairs near the threshold), and synthetic ICD-style diagnosis
titles (2,000 test + 2,000 train rows, left/right variants). Prints JSON; numbers and ids
only, never text. ``--out PATH`` also writes it there.

    .venv/bin/python bench/near_dedupe_compare.py
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import itertools
import json
import platform
import random
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from fractions import Fraction
from pathlib import Path

import numpy as np
from datasketch import MinHashLSH
from scipy import sparse

from medops.data.clean import (
    MINHASH_BANDS,
    MINHASH_ROWS,
    NEAR_DUPLICATE_JACCARD,
    _shared,
    _signatures,
    _test_first,
    clean_records,
    dedupe,
    keep_classes,
    near_dedupe,
    normalise,
    select_classes,
    shingles,
)
from medops.data.ingest import Quarantined, Record, ingest
from medops.recipe import load_recipe

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "condition-demo.yaml"


# --- the hand-written LSH that clean.py used before datasketch (verbatim) -------------


def _minhash_functions(count: int) -> tuple[np.ndarray, np.ndarray]:
    raw = np.frombuffer(hashlib.shake_256(b"medops near_dedupe").digest(16 * count), "<u8")
    values = raw.astype(np.uint64).reshape(2, count)
    return values[0] | np.uint64(1), values[1]


_MINHASH_MULTIPLIERS, _MINHASH_OFFSETS = _minhash_functions(MINHASH_BANDS * MINHASH_ROWS)


def _band_keys(fingerprints: np.ndarray) -> list[tuple[int, bytes]]:
    minima = (_MINHASH_MULTIPLIERS[:, None] * fingerprints + _MINHASH_OFFSETS[:, None]).min(axis=1)
    bands = minima.reshape(MINHASH_BANDS, MINHASH_ROWS)
    return [(band, values.tobytes()) for band, values in enumerate(bands)]


def legacy_near_dedupe(
    records: Iterable[Record],
    threshold: float = NEAR_DUPLICATE_JACCARD,
    protect_test: bool = False,
) -> tuple[list[Record], list[Quarantined]]:
    """The former ``near_dedupe``; ``protect_test=True`` applies the new rule to it."""
    ordered = _test_first(records)
    forms = [normalise(r.text) for r in ordered]
    sets = [shingles(form) for form in forms]
    num, den = Fraction(str(threshold)).as_integer_ratio()

    def near(row: int, other: int) -> bool:
        big, small = sorted((len(sets[row]), len(sets[other])), reverse=True)
        if num * big > den * small:
            return False
        shared = _shared(sets[row], sets[other])
        return shared * den >= num * (big + small - shared)

    seen: set[str] = set()
    buckets: dict[tuple[int, bytes], list[int]] = defaultdict(list)
    kept, quarantined = [], []
    for row, record in enumerate(ordered):
        keys = _band_keys(sets[row]) if len(sets[row]) else []
        exempt = protect_test and record.role == "test"
        candidates = [] if exempt else sorted({o for key in keys for o in buckets.get(key, ())})
        if not exempt and (forms[row] in seen or any(near(row, o) for o in candidates)):
            quarantined.append(Quarantined(record.id, record.source, "near_duplicate"))
            continue
        seen.add(forms[row])
        kept.append(record)
        for key in keys:
            buckets[key].append(row)
    return kept, quarantined


# --- exact reference -------------------------------------------------------------------


def exact_pairs(forms: list[str], sets: list[np.ndarray]) -> set[tuple[int, int]]:
    """Every pair (i < j) with equal normalised text or exact Jaccard >= the threshold."""
    vocabulary: dict[int, int] = {}
    cols = [np.array([vocabulary.setdefault(int(v), len(vocabulary)) for v in s]) for s in sets]
    indptr = np.cumsum([0] + [len(c) for c in cols])
    data = np.ones(indptr[-1], dtype=np.int32)
    indices = np.concatenate(cols) if cols else np.empty(0, dtype=np.int64)
    matrix = sparse.csr_matrix((data, indices, indptr), shape=(len(sets), len(vocabulary)))
    sizes = np.array([len(s) for s in sets])
    num, den = Fraction(str(NEAR_DUPLICATE_JACCARD)).as_integer_ratio()
    pairs: set[tuple[int, int]] = set()
    for start in range(0, len(sets), 500):
        inter = (matrix[start : start + 500] @ matrix.T).toarray().astype(np.int64)
        union = sizes[start : start + 500, None] + sizes[None, :] - inter
        hits = np.argwhere((inter * den >= num * union) & (union > 0))
        pairs.update((start + i, j) for i, j in hits if start + i < j)
    groups: dict[str, list[int]] = defaultdict(list)
    for row, form in enumerate(forms):
        groups[form].append(row)
    for rows in groups.values():
        pairs.update(itertools.combinations(rows, 2))
    return pairs


def greedy(ordered: list[Record], pairs: set[tuple[int, int]]) -> list[str]:
    """The new rule on exact pairs: a train row near any kept row is dropped."""
    neighbours: dict[int, set[int]] = defaultdict(set)
    for i, j in pairs:
        neighbours[i].add(j)
        neighbours[j].add(i)
    kept: set[int] = set()
    dropped = []
    for row, record in enumerate(ordered):
        if record.role != "test" and neighbours[row] & kept:
            dropped.append(record.id)
        else:
            kept.add(row)
    return dropped


def candidate_pairs(keys: list[list[object]]) -> set[tuple[int, int]]:
    """Pairs of rows sharing a band key: the pairs an LSH lets near_dedupe compare."""
    buckets: dict[object, list[int]] = defaultdict(list)
    for row, row_keys in enumerate(keys):
        for key in row_keys:
            buckets[key].append(row)
    return {pair for rows in buckets.values() for pair in itertools.combinations(rows, 2)}


def datasketch_keys(sets: list[np.ndarray]) -> list[list[object]]:
    """The band keys datasketch's MinHashLSH stores for each row (one table per band)."""
    index = MinHashLSH(num_perm=MINHASH_BANDS * MINHASH_ROWS, params=(MINHASH_BANDS, MINHASH_ROWS))
    return [
        []
        if signature is None
        else [
            (band, index._H(signature.hashvalues[start:end]))
            for band, (start, end) in enumerate(index.hashranges)
        ]
        for signature in _signatures(sets)
    ]


# --- data --------------------------------------------------------------------------------


def demo_rows() -> tuple[list[Record], list[Record]]:
    """(rows as prepare hands them to near_dedupe, all cleaned + exact-deduplicated rows)."""
    recipe = load_recipe(RECIPE)
    data = recipe.data
    sources = ingest(data.sources, data.columns, recipe.deid.keep_terms_from)
    records = [r for s in sources for r in s.records]
    cleaned, _ = clean_records(records, data.label_map, data.min_chars, data.max_chars)
    in_scope, _ = keep_classes(cleaned, select_classes(cleaned, data.classes, data.top_k_classes))
    return dedupe(in_scope)[0], dedupe(cleaned)[0]


def edited_copies(rows: list[Record], count: int, seed: int = 13) -> list[Record]:
    """The rows plus ``count`` copies with 1-8 words replaced, in random roles."""
    rng = random.Random(seed)
    words = [w for r in rows for w in r.text.split()]
    out = list(rows)
    for n in range(count):
        source = rng.choice(rows)
        edited = source.text.split()
        for _ in range(rng.randint(1, 8)):
            edited[rng.randrange(len(edited))] = rng.choice(words)
        role = rng.choice(["train", "test"])
        out.append(Record(f"{role}:copy{n}", "edited", role, " ".join(edited), source.label))
    return dedupe(out)[0]


SIDES = ("left", "right")
BONES = ("femur", "tibia", "fibula", "humerus", "radius", "ulna", "clavicle", "patella")
PARTS = ("shaft", "lower end", "upper end")
ENCOUNTERS = (
    "initial encounter for closed fracture",
    "initial encounter for open fracture type I or II",
    "initial encounter for open fracture type IIIA, IIIB, or IIIC",
    "subsequent encounter for closed fracture with routine healing",
    "subsequent encounter for closed fracture with delayed healing",
    "subsequent encounter for closed fracture with nonunion",
    "subsequent encounter for closed fracture with malunion",
    "sequela",
)
SITES = ("knee", "hip", "shoulder", "ankle", "wrist", "elbow", "foot", "hand", "thigh", "forearm")


def diagnosis_titles() -> list[tuple[str, str]]:
    """ICD-10-CM-style titles with their chapter-ish label; many differ only in side."""
    titles = [
        (f"{d} {kind} fracture of {part} of {side} {bone}, {enc}", "fracture")
        for d in ("Displaced", "Nondisplaced")
        for kind in ("transverse", "oblique", "spiral", "comminuted", "segmental")
        for part in PARTS
        for side in SIDES
        for bone in BONES
        for enc in ENCOUNTERS
    ]
    titles += [
        (f"Fracture of {side} {bone}, {state}", "fracture")
        for side in SIDES
        for bone in BONES
        for state in ("closed", "open")
    ]
    titles += [
        (f"{injury} of {side} {site}, {enc}", "injury")
        for injury in ("Strain", "Sprain", "Contusion", "Laceration without foreign body")
        for side in SIDES
        for site in SITES
        for enc in ("initial encounter", "subsequent encounter", "sequela")
    ]
    titles += [
        (f"{kind} of {side} {site}", "arthritis")
        for kind in ("Primary osteoarthritis", "Post-traumatic osteoarthritis", "Pain")
        for side in SIDES
        for site in SITES
    ]
    return titles


def diagnosis_rows(per_role: int = 2000, seed: int = 13) -> list[Record]:
    titles = diagnosis_titles()
    random.Random(seed).shuffle(titles)
    roles = ["test"] * per_role + ["train"] * per_role
    return [
        Record(f"{role}:dx{n}", "synthetic", role, text, label)
        for n, ((text, label), role) in enumerate(zip(titles, roles, strict=False))
    ]


# --- measurement -------------------------------------------------------------------------


def best_seconds(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Best wall time of each function; they take turns, so a busy machine slows all alike."""
    times: dict[str, list[float]] = defaultdict(list)
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: round(min(values), 4) for name, values in times.items()}


def measure(rows: list[Record], repeats: int) -> dict[str, object]:
    ordered = _test_first(rows)
    forms = [normalise(r.text) for r in ordered]
    sets = [shingles(f) for f in forms]
    truth = exact_pairs(forms, sets)
    role = [r.role for r in ordered]
    relevant = {(i, j) for i, j in truth if "train" in (role[i], role[j])}
    legacy_cand = candidate_pairs([_band_keys(s) if len(s) else [] for s in sets])
    sketch_cand = candidate_pairs(datasketch_keys(sets))
    # equal normalised text is caught by the `seen` check, not by LSH: count Jaccard misses
    jaccard_truth = {(i, j) for i, j in truth if forms[i] != forms[j] and len(sets[i])}

    old = legacy_near_dedupe(rows)[1]
    legacy_new_rule = legacy_near_dedupe(rows, protect_test=True)[1]
    new = near_dedupe(rows)[1]
    reference = greedy(ordered, truth)
    return {
        "rows": len(rows),
        "test_rows": role.count("test"),
        "exact_pairs": len(truth),
        "exact_pairs_test_test": len(truth) - len(relevant),
        "jaccard_pairs_not_textually_equal": len(jaccard_truth),
        "candidates_legacy": len(legacy_cand),
        "candidates_datasketch": len(sketch_cand),
        "missed_legacy": len(jaccard_truth - legacy_cand),
        "missed_datasketch": len(jaccard_truth - sketch_cand),
        "marked_old_function_old_rule": len(old),
        "marked_old_function_old_rule_test_rows": sum(q.id.startswith("test:") for q in old),
        "marked_legacy_lsh_new_rule": len(legacy_new_rule),
        "marked_datasketch_new_rule": len(new),
        "marked_exact_reference_new_rule": len(reference),
        "datasketch_equals_exact_reference": sorted(q.id for q in new) == sorted(reference),
        "legacy_equals_exact_reference": sorted(q.id for q in legacy_new_rule) == sorted(reference),
        **best_seconds(
            {
                "seconds_old": lambda: legacy_near_dedupe(rows),
                "seconds_legacy_lsh_new_rule": lambda: legacy_near_dedupe(rows, protect_test=True),
                "seconds_new": lambda: near_dedupe(rows),
            },
            repeats,
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--copies", type=int, default=3000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    prepared, cleaned = demo_rows()
    result = {
        "benchmark": "near_dedupe_compare",
        "threshold": NEAR_DUPLICATE_JACCARD,
        "bands_x_rows": [MINHASH_BANDS, MINHASH_ROWS],
        "datasketch": importlib.metadata.version("datasketch"),
        "numpy": np.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "data": {
            "demo_prepared": measure(prepared, args.repeats),
            "demo_all_cleaned": measure(cleaned, args.repeats),
            "demo_edited_copies": measure(edited_copies(cleaned, args.copies), args.repeats),
            "diagnosis_titles": measure(dedupe(diagnosis_rows())[0], args.repeats),
        },
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
