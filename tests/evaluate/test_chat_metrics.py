from __future__ import annotations

import pytest

from medops.evaluate import generation_metrics
from medops.evaluate.chat_metrics import (
    SCORE_NAMES,
    compare,
    is_empty_or_refusal,
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
