"""The worded comparison: better, not distinguishable or worse, always with the interval."""

from __future__ import annotations

import pytest

from medops.evaluate.verdict import Comparison


def _metrics(low: float, high: float, **extra: float) -> dict[str, float]:
    return {
        "macro_f1": 0.755,
        "baseline_macro_f1": 0.737,
        "macro_f1_diff": 0.018,
        "macro_f1_diff_ci_low": low,
        "macro_f1_diff_ci_high": high,
        **extra,
    }


@pytest.mark.parametrize(
    ("low", "high", "verdict"),
    [
        (0.01, 0.05, "better"),
        (-0.03, 0.07, "not distinguishable"),
        (0.0, 0.05, "not distinguishable"),
        (-0.09, -0.01, "worse"),
    ],
)
def test_the_verdict_follows_the_interval_not_the_point(
    low: float, high: float, verdict: str
) -> None:
    comparison = Comparison.read(_metrics(low, high), "macro_f1", "baseline")
    assert comparison is not None and comparison.verdict == verdict


def test_the_text_names_values_difference_and_interval() -> None:
    comparison = Comparison.read(_metrics(-0.03, 0.07), "macro_f1", "baseline")
    assert comparison is not None
    assert comparison.text() == (
        "macro_f1 0.755 vs baseline 0.737: not distinguishable "
        "(difference +0.018, 95% CI [-0.030, +0.070])"
    )
    assert comparison.to_dict()["verdict"] == "not distinguishable"
    level = Comparison.read(_metrics(-0.03, 0.07, ci_level=0.9), "macro_f1", "baseline")
    assert level is not None and "90% CI" in level.text()


def test_no_comparison_without_its_interval() -> None:
    metrics = _metrics(0.0, 0.1)
    del metrics["macro_f1_diff_ci_high"]
    assert Comparison.read(metrics, "macro_f1", "baseline") is None
    assert Comparison.read(_metrics(0.0, 0.1), "macro_f1", "champion") is None
