"""The distances and the permutation test, on counts with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from medops.monitor.permutation import permutation_test
from medops.monitor.statistics import jensen_shannon, oov_share, psi, quantile_counts


def test_psi_is_zero_for_equal_shares_and_grows_with_the_shift():
    same = psi(np.array([50, 30, 20]), np.array([100, 60, 40]))
    small = psi(np.array([50, 30, 20]), np.array([45, 33, 22]))
    large = psi(np.array([50, 30, 20]), np.array([10, 10, 80]))
    assert same == pytest.approx(0.0, abs=1e-4)  # only the empty-bin smoothing
    assert 0 < small < 0.05 < 0.25 < large


def test_an_empty_bin_gives_a_finite_psi():
    assert np.isfinite(psi(np.array([10, 0]), np.array([0, 10])))


def test_quantile_bins_come_from_the_reference_and_merge_ties():
    reference = np.arange(100, dtype=float)
    ref_counts, cur_counts = quantile_counts(reference, np.full(10, 500.0))
    assert ref_counts.tolist() == [10] * 10  # deciles
    assert cur_counts[-1] == 10 and cur_counts[:-1].sum() == 0  # all beyond the top decile
    constant, _ = quantile_counts(np.full(50, 7.0), np.array([7.0]))
    assert len(constant) == 2  # every edge is 7: one edge, two bins


def test_jensen_shannon_and_oov_share():
    assert jensen_shannon(np.array([5, 5, 0]), np.array([5, 5, 0])) == pytest.approx(0.0)
    assert jensen_shannon(np.array([1, 0]), np.array([0, 1])) == pytest.approx(1.0)
    assert oov_share(np.array([3, 0, 2]), np.array([1, 3, 0])) == pytest.approx(0.75)
    assert oov_share(np.array([3]), np.array([0])) == 0.0


def test_permutation_test_separates_a_shift_from_chance():
    rng = np.random.default_rng(0)
    reference = rng.normal(0, 1, 200)

    def mean_gap(values):
        return lambda r, c: abs(values[r].mean() - values[c].mean())

    same = np.concatenate([reference, rng.normal(0, 1, 60)])
    shifted = np.concatenate([reference, rng.normal(1, 1, 60)])
    chance = permutation_test(mean_gap(same), 200, 60, 200, seed=1)
    real = permutation_test(mean_gap(shifted), 200, 60, 200, seed=1)
    assert chance.p_value > 0.05 and chance.expected > 0  # a gap exists by chance alone
    assert real.p_value == pytest.approx(1 / 201)  # no shuffle comes close
    assert real.value > 0.7 > real.expected
