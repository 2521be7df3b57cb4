"""Bootstrap intervals: the generic mean helpers and the paired, vectorised resampling."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from medops.evaluate.intervals import (
    Resamples,
    RowScores,
    bootstrap_ci,
    combine,
    interval_metrics,
    mean_scores,
    paired_difference_ci,
)
from medops.evaluate.metrics import label_scores


def test_bootstrap_ci_contains_the_mean() -> None:
    values = np.random.default_rng(1).random(50).tolist()
    mean, low, high = bootstrap_ci(values)
    assert mean == pytest.approx(float(np.mean(values)))
    assert low < mean < high


def test_bootstrap_ci_narrows_with_more_data() -> None:
    small = bootstrap_ci([0.0, 1.0] * 5)
    large = bootstrap_ci([0.0, 1.0] * 500)
    assert small[0] == large[0] == 0.5
    assert large[2] - large[1] < (small[2] - small[1]) / 5


def test_bootstrap_ci_on_two_values_matches_the_exact_distribution() -> None:
    # Resampled means of [0, 1] are 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4.
    assert bootstrap_ci([0.0, 1.0]) == (0.5, 0.0, 1.0)
    assert bootstrap_ci([0.0, 1.0], level=0.4) == (0.5, 0.5, 0.5)


def test_bootstrap_ci_widens_with_the_level() -> None:
    values = np.random.default_rng(2).random(40).tolist()
    _, low_80, high_80 = bootstrap_ci(values, level=0.8)
    _, low_99, high_99 = bootstrap_ci(values, level=0.99)
    assert low_99 < low_80 < high_80 < high_99


def test_bootstrap_ci_is_reproducible_for_a_seed() -> None:
    values = np.random.default_rng(3).random(30).tolist()
    assert bootstrap_ci(values, seed=7) == bootstrap_ci(values, seed=7)
    assert bootstrap_ci(values, seed=7) != bootstrap_ci(values, seed=8)


@pytest.mark.parametrize("values", [[0.3], [0.1] * 7])
def test_bootstrap_ci_of_constant_values_is_a_point(values: list[float]) -> None:
    assert bootstrap_ci(values) == (values[0], values[0], values[0])


def test_bootstrap_ci_refuses_empty_input() -> None:
    with pytest.raises(ValueError, match="no values to bootstrap"):
        bootstrap_ci([])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"level": 1.0}, "level must be strictly between 0 and 1"),
        ({"level": 0.0}, "level must be strictly between 0 and 1"),
        ({"resamples": 0}, "resamples must be at least 1"),
    ],
)
def test_bootstrap_ci_refuses_bad_options(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        bootstrap_ci([0.0, 1.0], **options)


def test_bootstrap_ci_refuses_non_finite_values() -> None:
    with pytest.raises(ValueError, match="1 of 3 values are not finite"):
        bootstrap_ci([0.0, float("nan"), 1.0])


def test_paired_difference_of_identical_lists_is_zero() -> None:
    values = np.random.default_rng(4).random(20).tolist()
    assert paired_difference_ci(values, values) == (0.0, 0.0, 0.0)


def test_paired_difference_of_a_clearly_better_list_is_above_zero() -> None:
    rng = np.random.default_rng(5)
    base = rng.random(40)
    tuned = base + 0.3 + rng.normal(0.0, 0.05, size=40)
    diff, low, high = paired_difference_ci(tuned.tolist(), base.tolist())
    assert diff == pytest.approx(float(np.mean(tuned - base)))
    assert 0.0 < low < diff < high


def test_paired_difference_cancels_shared_per_example_difficulty() -> None:
    # Scores spread over [0, 1] but the tuned model is 0.05 better on every single prompt:
    # the unpaired intervals overlap, the paired one is a point at 0.05.
    base = np.random.default_rng(6).random(20)
    tuned = base + 0.05
    _, tuned_low, _ = bootstrap_ci(tuned.tolist())
    _, _, base_high = bootstrap_ci(base.tolist())
    assert tuned_low < base_high
    diff, low, high = paired_difference_ci(tuned.tolist(), base.tolist())
    assert (diff, low, high) == pytest.approx((0.05, 0.05, 0.05))


def test_paired_difference_length_mismatch_names_both_lengths() -> None:
    with pytest.raises(ValueError, match="equal lengths: 3 against 2"):
        paired_difference_ci([1.0, 2.0, 3.0], [1.0, 2.0])


def _labels(rows: int, wrong: set[int], seed: int = 0) -> tuple[list[str], list[str]]:
    """Gold labels and answers that are right except on the ``wrong`` rows."""
    classes = ["Acne", "Depression", "Pain"]
    gold = [classes[i] for i in np.random.default_rng(seed).integers(0, 3, rows)]
    answers = [classes[(classes.index(g) + 1) % 3] if i in wrong else g for i, g in enumerate(gold)]
    return gold, answers


def _sides(rows: int, model_wrong: set[int], base_wrong: set[int]) -> dict[str, RowScores]:
    gold, model = _labels(rows, model_wrong)
    _, base = _labels(rows, base_wrong)
    classes = sorted(set(gold))
    return {
        "model": label_scores(gold, model, classes),
        "baseline": label_scores(gold, base, classes),
    }


def test_resample_weights_count_each_draw_once() -> None:
    resamples = Resamples(7, resamples=50, seed=3, level=0.95)
    assert resamples.weights.shape == (50, 7)
    assert (resamples.weights.sum(axis=1) == 7).all()
    for row in (0, 49):
        assert np.array_equal(
            resamples.weights[row], np.bincount(resamples.indices[row], minlength=7)
        )


def test_a_clearly_better_model_has_a_paired_interval_above_zero() -> None:
    sides = _sides(200, model_wrong=set(range(0, 200, 10)), base_wrong=set(range(0, 200, 3)))
    flat = interval_metrics(sides, Resamples(200, resamples=500, seed=13, level=0.95))
    for name in ("macro_f1", "accuracy", "macro_precision", "macro_recall"):
        assert flat[f"{name}_diff"] > 0
        assert 0 < flat[f"{name}_diff_ci_low"] < flat[f"{name}_diff"] < flat[f"{name}_diff_ci_high"]
        assert flat[f"{name}_ci_low"] < sides["model"].point()[name] < flat[f"{name}_ci_high"]


def test_models_that_differ_on_a_few_rows_are_not_distinguishable() -> None:
    # both wrong on every 5th row; the candidate fixes 2 of them and breaks 1 other
    base_wrong = set(range(0, 100, 5))
    sides = _sides(100, model_wrong=(base_wrong - {0, 5}) | {1}, base_wrong=base_wrong)
    flat = interval_metrics(sides, Resamples(100, resamples=500, seed=13, level=0.95))
    assert flat["accuracy_diff"] == pytest.approx(0.01)
    assert flat["accuracy_diff_ci_low"] < 0 < flat["accuracy_diff_ci_high"]
    assert flat["macro_f1_diff_ci_low"] < 0 < flat["macro_f1_diff_ci_high"]


def test_the_paired_interval_is_tighter_than_the_unpaired_intervals_suggest() -> None:
    # the candidate fixes 6 of the baseline's 30 errors and breaks none
    base_wrong = set(range(0, 150, 5))
    sides = _sides(150, model_wrong=set(sorted(base_wrong)[6:]), base_wrong=base_wrong)
    flat = interval_metrics(sides, Resamples(150, resamples=1000, seed=13, level=0.95))
    assert flat["accuracy_ci_low"] < flat["baseline_accuracy_ci_high"], "unpaired: overlap"
    assert flat["accuracy_diff_ci_low"] > 0, "paired: a gain beyond noise"


def test_intervals_are_deterministic_for_a_seed() -> None:
    sides = _sides(60, model_wrong={1, 2, 3}, base_wrong={4, 5, 6, 7})

    def flat(seed: int) -> dict[str, float]:
        return interval_metrics(sides, Resamples(60, resamples=200, seed=seed, level=0.9))

    assert flat(5) == flat(5)
    assert flat(5) != flat(6)
    assert flat(5)["ci_level"] == 0.9


def test_mean_scores_and_combine_score_resamples_and_subsets() -> None:
    values = {"hit": [1.0, 0.0, 1.0, 1.0], "rouge_l": [0.5, 0.1, 0.9, 0.3]}
    combined = combine(mean_scores(values), mean_scores({"empty": [0.0, 0.0, 1.0, 0.0]}))
    assert combined.point() == pytest.approx({"hit": 0.75, "rouge_l": 0.45, "empty": 0.25})
    assert combined.on(np.array([1, 1, 2])) == pytest.approx(
        {"hit": 1 / 3, "rouge_l": 1.1 / 3, "empty": 1 / 3}
    )
    resamples = Resamples(4, resamples=100, seed=1, level=0.95)
    resampled = combined.resampled(resamples)
    expected = np.asarray(values["rouge_l"])[resamples.indices].mean(axis=1)
    assert np.allclose(resampled["rouge_l"], expected)


def test_resampled_rows_must_match_the_scored_rows() -> None:
    with pytest.raises(ValueError, match="3 scored rows but 4 resampled rows"):
        mean_scores({"x": [1.0, 0.0, 1.0]}).resampled(
            Resamples(4, resamples=10, seed=0, level=0.95)
        )
