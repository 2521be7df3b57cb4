"""Distances between a reference and a current sample, over counts only (never the rows).

PSI (population stability index) compares binned shares; it is the usual drift measure
for lengths and categories (0.1: moderate, 0.25: major shift, for large samples). Word
frequencies are compared by Jensen-Shannon divergence and by the out-of-vocabulary share.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import jensenshannon

# added to every bin's count: an empty bin would make PSI infinite
SMOOTHING = 0.5
LENGTH_BINS = 10


def psi(reference: np.ndarray, current: np.ndarray) -> float:
    """PSI of two count vectors over the same bins."""
    p = (reference + SMOOTHING) / (reference.sum() + SMOOTHING * len(reference))
    q = (current + SMOOTHING) / (current.sum() + SMOOTHING * len(current))
    return float(np.sum((q - p) * np.log(q / p)))


def quantile_counts(
    reference: np.ndarray, current: np.ndarray, bins: int = LENGTH_BINS
) -> tuple[np.ndarray, np.ndarray]:
    """Counts of both samples in the reference's quantile bins (ties merge bins)."""
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    size = len(edges) + 1

    def counts(values: np.ndarray) -> np.ndarray:
        return np.bincount(np.searchsorted(edges, values, side="right"), minlength=size)

    return counts(reference), counts(current)


def jensen_shannon(reference: np.ndarray, current: np.ndarray) -> float:
    """Jensen-Shannon divergence (base 2, 0 to 1) of two count vectors."""
    if reference.sum() == 0 or current.sum() == 0:
        return 0.0
    return float(jensenshannon(reference, current, base=2) ** 2)


def oov_share(reference: np.ndarray, current: np.ndarray) -> float:
    """Share of the current sample's words that the reference never has."""
    total = current.sum()
    return float(current[reference == 0].sum() / total) if total else 0.0
