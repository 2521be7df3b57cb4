"""How large a statistic is by chance alone, at the sample sizes at hand.

Every drift measure is biased upwards on small samples (a PSI of 50 rows against 200 is
well above zero with no shift at all), so a fixed threshold alone fires on noise. Shuffling
the pooled rows between the two sides many times gives the statistic's distribution when
both sides come from one population: its mean is what chance gives (``expected``), and the
share of shuffles at least as large as the observed value is the p-value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# (indices of the reference rows, indices of the current rows) into the pooled rows -> value
Statistic = Callable[[np.ndarray, np.ndarray], float]


@dataclass(frozen=True)
class Tested:
    value: float
    expected: float  # mean over the shuffles
    p_value: float


def permutation_test(
    statistic: Statistic, n_reference: int, n_current: int, permutations: int, seed: int
) -> Tested:
    """The observed statistic, its mean under shuffling, and its one-sided p-value."""
    rng = np.random.default_rng(seed)
    pooled = np.arange(n_reference + n_current)
    observed = statistic(pooled[:n_reference], pooled[n_reference:])
    null = np.empty(permutations)
    for i in range(permutations):
        shuffled = rng.permutation(pooled)
        null[i] = statistic(shuffled[:n_reference], shuffled[n_reference:])
    p_value = (1 + int(np.sum(null >= observed))) / (1 + permutations)
    return Tested(observed, float(null.mean()), p_value)
