"""Exposure on distributions whose tails are known, so the estimate can be checked."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from medops.privacy.exposure import exposure_bits, rank_exposure_bits


@pytest.fixture(scope="module")
def normal_reference() -> np.ndarray:
    return stats.norm.rvs(size=4000, random_state=np.random.default_rng(0))


def test_exposure_is_minus_log2_of_the_reference_tail(normal_reference: np.ndarray) -> None:
    # a canary 3 sd below the mean: P(reference <= it) = Phi(-3) = 0.00135, 9.53 bits
    assert exposure_bits(-3.0, normal_reference) == pytest.approx(
        -math.log2(stats.norm.cdf(-3.0)), abs=0.4
    )
    # an ordinary candidate (the median) is as likely as half the references: about 1 bit
    assert exposure_bits(0.0, normal_reference) == pytest.approx(1.0, abs=0.15)
    # far beyond any reference the fit still answers, finite, where a rank caps out
    far = exposure_bits(-12.0, normal_reference)
    assert math.isfinite(far) and far > 60


def test_a_skewed_reference_is_fitted_as_skewed() -> None:
    shape = 4.0
    reference = stats.skewnorm.rvs(shape, size=4000, random_state=np.random.default_rng(3))
    low = stats.skewnorm.ppf(1e-3, shape)  # the 0.1% quantile: 9.97 bits
    assert exposure_bits(low, reference) == pytest.approx(-math.log2(1e-3), abs=0.5)
    # a normal fit puts the same point at about 5.8 bits: the skew of the tail matters
    normal = -stats.norm.logcdf(low, *stats.norm.fit(reference)) / math.log(2)
    assert exposure_bits(low, reference) - normal > 3.0


def test_rank_exposure_is_log2_of_candidates_over_rank() -> None:
    reference = [float(v) for v in range(1, 100)]  # 99 references + the canary: |R| = 100
    assert rank_exposure_bits(0.5, reference) == pytest.approx(math.log2(100))  # rank 1
    assert rank_exposure_bits(1000.0, reference) == pytest.approx(0.0)  # rank 100
    assert rank_exposure_bits(50.5, reference) == pytest.approx(math.log2(100 / 51))
