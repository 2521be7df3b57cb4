"""The drift verdicts: each statistic against its threshold, then one overall verdict.

A statistic *drifts* when its value exceeds what chance gives at these sample sizes by more
than its threshold (``monitor.drift.thresholds``) and its permutation p-value is below
``monitor.drift.alpha``. Fewer recorded exchanges than ``min_rows`` is *insufficient
data*, never a drift; a statistic whose inputs a task lacks (answers of a classifier, a
label field of a chat model) is *not available*.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

import numpy as np
from scipy import sparse

from medops.monitor.permutation import Statistic, permutation_test
from medops.monitor.sides import Side, words
from medops.monitor.statistics import jensen_shannon, oov_share, psi, quantile_counts
from medops.recipe import Drift

OK, DRIFT, INSUFFICIENT, UNAVAILABLE = "ok", "drift", "insufficient data", "not available"
MIN_REFERENCE_ROWS = 20  # below this the reference's bins and vocabulary mean little


@dataclass(frozen=True)
class Finding:
    """One statistic's verdict, with the numbers behind it (aggregates only)."""

    statistic: str
    verdict: str
    threshold: float
    reference_rows: int
    current_rows: int
    value: float | None = None
    expected: float | None = None  # by chance alone, at these sample sizes
    p_value: float | None = None
    shares: dict[str, dict[str, float]] = field(default_factory=dict)  # categories only

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _lengths(texts: list[str]) -> np.ndarray:
    return np.array([len(t) for t in texts], dtype=float)


def length_psi(reference: list[str], current: list[str]) -> Statistic:
    pooled = np.concatenate([_lengths(reference), _lengths(current)])
    return lambda r, c: psi(*quantile_counts(pooled[r], pooled[c]))


def _word_matrix(texts: list[str]) -> sparse.csr_matrix:
    """Rows x vocabulary word counts of the pooled texts."""
    vocabulary: dict[str, int] = {}
    rows, columns, counts = [], [], []
    for i, text in enumerate(texts):
        for word, count in Counter(words(text)).items():
            rows.append(i)
            columns.append(vocabulary.setdefault(word, len(vocabulary)))
            counts.append(count)
    shape = (len(texts), max(len(vocabulary), 1))
    return sparse.csr_matrix((counts, (rows, columns)), shape=shape, dtype=float)


def word_statistic(
    reference: list[str], current: list[str], measure: Callable[[np.ndarray, np.ndarray], float]
) -> Statistic:
    """``measure`` of the two sides' word counts (one sparse product per shuffle)."""
    matrix = _word_matrix(reference + current)
    totals = np.asarray(matrix.sum(axis=0)).ravel()

    def statistic(r: np.ndarray, c: np.ndarray) -> float:
        chosen = np.zeros(matrix.shape[0])
        chosen[r] = 1.0
        counts = matrix.T @ chosen
        return measure(counts, totals - counts)

    return statistic


def category_psi(reference: list[str], current: list[str]) -> Statistic:
    names = sorted(set(reference) | set(current))
    codes = np.array([names.index(v) for v in reference + current])
    return lambda r, c: psi(
        np.bincount(codes[r], minlength=len(names)), np.bincount(codes[c], minlength=len(names))
    )


def category_shares(reference: list[str], current: list[str]) -> dict[str, dict[str, float]]:
    """Each category's share on both sides (class names and buckets only, never free text)."""
    sides = {"reference": Counter(reference), "current": Counter(current)}
    names = sorted(set(reference) | set(current))
    return {
        name: {side: counts[name] / max(sum(counts.values()), 1) for side, counts in sides.items()}
        for name in names
    }


def _finding(
    name: str,
    build: Callable[[list[str], list[str]], Statistic],
    reference: list[str],
    current: list[str],
    settings: Drift,
    seed: int,
) -> Finding:
    threshold = getattr(settings.thresholds, name)
    sizes = {"threshold": threshold, "reference_rows": len(reference), "current_rows": len(current)}
    if not reference:
        return Finding(name, UNAVAILABLE, **sizes)
    if len(current) < settings.min_rows or len(reference) < MIN_REFERENCE_ROWS:
        return Finding(name, INSUFFICIENT, **sizes)
    tested = permutation_test(
        build(reference, current), len(reference), len(current), settings.permutations, seed
    )
    drifted = tested.value - tested.expected > threshold and tested.p_value < settings.alpha
    shares = category_shares(reference, current) if name == "answer_category_psi" else {}
    return Finding(
        name,
        DRIFT if drifted else OK,
        value=tested.value,
        expected=tested.expected,
        p_value=tested.p_value,
        shares=shares,
        **sizes,
    )


# (statistic, how it is built from two samples, which list of a side it reads)
STATISTICS: tuple[tuple[str, Callable[[list[str], list[str]], Statistic], str], ...] = (
    ("input_length_psi", length_psi, "texts"),
    ("vocabulary_oov", partial(word_statistic, measure=oov_share), "texts"),
    ("vocabulary_jsd", partial(word_statistic, measure=jensen_shannon), "texts"),
    ("answer_length_psi", length_psi, "answers"),
    ("answer_category_psi", category_psi, "categories"),
)


def compare(reference: Side, current: Side, settings: Drift, seed: int) -> list[Finding]:
    """Every statistic's finding, in ``STATISTICS`` order."""
    return [
        _finding(name, build, getattr(reference, part), getattr(current, part), settings, seed)
        for name, build, part in STATISTICS
    ]


def overall(findings: list[Finding]) -> str:
    """Drift if any statistic drifts; ok if any could be judged; else insufficient data."""
    verdicts = {f.verdict for f in findings}
    if DRIFT in verdicts:
        return DRIFT
    return OK if OK in verdicts else INSUFFICIENT
