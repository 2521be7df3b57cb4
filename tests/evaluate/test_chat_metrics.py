from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from medops.evaluate import generation_metrics
from medops.evaluate.chat_metrics import (
    SCORE_NAMES,
    bootstrap_ci,
    compare,
    is_empty_or_refusal,
    paired_difference_ci,
    score_answers,
    summarise,
)

PREDICTIONS = ["Lexapro.", "major depression", "take ibuprofen"]
REFERENCES = ["lexapro", "depression", "rest and fluids"]


def test_score_answers_match_hand_computed_values() -> None:
    scores = score_answers(PREDICTIONS, REFERENCES)
    assert set(scores) == set(SCORE_NAMES)
    assert scores["exact_match"] == [1.0, 0.0, 0.0]
    # "major depression" vs "depression": P 1/2, R 1, F1 2/3; no shared token in the third.
    assert scores["token_f1"] == pytest.approx([1.0, 2 / 3, 0.0])
    assert scores["answer_chars"] == [8.0, 16.0, 14.0]
    assert scores["empty_or_refusal"] == [0.0, 0.0, 0.0]
    assert scores["rouge_l"] == [
        generation_metrics.rouge_l(p, r) for p, r in zip(PREDICTIONS, REFERENCES, strict=True)
    ]


def test_rouge_l_is_the_shared_unicode_aware_one() -> None:
    # LCS 3 of 3 predicted and 4 reference tokens: F = 2 * 1 * 3/4 / (1 + 3/4) = 6/7.
    assert score_answers(["la fièvre monte"], ["la fièvre monte vite"])["rouge_l"] == [
        pytest.approx(6 / 7)
    ]


def test_answer_chars_ignores_surrounding_whitespace() -> None:
    assert score_answers(["  abc\n\n"], ["abc"])["answer_chars"] == [3.0]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \n\t",
        "I'm sorry, but I can't help with that.",
        "I’m sorry, but I cannot give medical advice.",
        "  i cannot recommend a dose",
        "I'm unable to answer this.",
        "As an AI, I do not have access to your records.",
        "AS AN AI LANGUAGE MODEL I must decline.",
        "Je ne peux pas répondre à cette question.",
        "Désolé, je ne peux pas vous aider.",
        "désolée, mais ce n'est pas possible",
        "Je suis désolé, mais je ne peux pas.",
        "En tant qu’IA, je ne peux pas poser de diagnostic.",
        "De\u0301sole\u0301, je ne peux pas.",  # decomposed accents
    ],
)
def test_refusals_and_empty_answers_are_flagged(text: str) -> None:
    assert is_empty_or_refusal(text)
    assert score_answers([text], ["reference"])["empty_or_refusal"] == [1.0]


@pytest.mark.parametrize(
    "text",
    [
        "Take 400 mg of ibuprofen with food.",
        "I'm sorry to hear that; rest and drink fluids.",
        "I can take it with food, yes.",
        "The patient said I cannot sleep.",
        "As an AIDS patient, you should ask your doctor.",
        "Je peux vous aider : prenez du paracétamol.",
        "Le patient est désolé de son retard.",
        "Désolation n'est pas un symptôme.",
    ],
)
def test_real_answers_are_not_flagged(text: str) -> None:
    assert not is_empty_or_refusal(text)


def test_score_answers_length_mismatch_names_both_lengths() -> None:
    with pytest.raises(ValueError, match="3 predictions but 2 references"):
        score_answers(PREDICTIONS, REFERENCES[:2])


def test_score_answers_refuses_empty_input() -> None:
    with pytest.raises(ValueError, match="no answers to score"):
        score_answers([], [])


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


def test_summarise_keys_and_values() -> None:
    scores = {"rouge_l": [0.0, 1.0], "exact_match": [1.0, 1.0]}
    metrics = summarise(scores, prefix="baseline_")
    assert metrics == {
        "baseline_rouge_l": 0.5,
        "baseline_rouge_l_ci_low": 0.0,
        "baseline_rouge_l_ci_high": 1.0,
        "baseline_exact_match": 1.0,
        "baseline_exact_match_ci_low": 1.0,
        "baseline_exact_match_ci_high": 1.0,
    }
    assert all(type(value) is float for value in metrics.values())


def test_summarise_of_scored_answers_has_three_keys_per_score() -> None:
    metrics = summarise(score_answers(PREDICTIONS, REFERENCES))
    assert set(metrics) == {
        f"{name}{suffix}" for name in SCORE_NAMES for suffix in ("", "_ci_low", "_ci_high")
    }
    assert metrics["exact_match"] == pytest.approx(1 / 3)


def test_compare_keys_cover_shared_scores_only() -> None:
    tuned = {"rouge_l": [1.0, 1.0], "token_f1": [0.5, 1.0], "only_tuned": [1.0, 1.0]}
    base = {"rouge_l": [0.0, 0.0], "token_f1": [0.5, 1.0], "only_base": [0.0, 0.0]}
    metrics = compare(tuned, base)
    assert metrics == {
        "rouge_l_diff": 1.0,
        "rouge_l_diff_ci_low": 1.0,
        "rouge_l_diff_ci_high": 1.0,
        "token_f1_diff": 0.0,
        "token_f1_diff_ci_low": 0.0,
        "token_f1_diff_ci_high": 0.0,
    }


def test_compare_is_tuned_minus_base() -> None:
    metrics = compare({"token_f1": [0.0, 0.0, 0.0, 1.0]}, {"token_f1": [1.0, 1.0, 1.0, 1.0]})
    assert metrics["token_f1_diff"] == -0.75
    assert metrics["token_f1_diff_ci_high"] <= 0.0


def test_compare_length_mismatch_names_the_score() -> None:
    with pytest.raises(ValueError, match="score 'rouge_l': 3 tuned values but 2 base values"):
        compare({"rouge_l": [1.0, 1.0, 1.0]}, {"rouge_l": [0.0, 0.0]})


def test_compare_refuses_disjoint_score_names() -> None:
    with pytest.raises(ValueError, match="no score names in common"):
        compare({"rouge_l": [1.0]}, {"token_f1": [1.0]})
