"""Drift verdicts: planted shifts fire, a sample of the same population does not, and too
little traffic is insufficient data rather than an alarm."""

from __future__ import annotations

import pytest

from medops.monitor.drift import (
    DRIFT,
    INSUFFICIENT,
    OK,
    UNAVAILABLE,
    Finding,
    compare,
    overall,
)
from medops.monitor.sides import Side
from medops.recipe import Drift
from tests.monitor.samples import NEW_WORDS, USUAL_WORDS, side

SETTINGS = Drift(min_rows=50, permutations=100)
REFERENCE = side(300, seed=1)


def verdicts(current: Side, reference: Side = REFERENCE) -> dict[str, str]:
    return {f.statistic: f.verdict for f in compare(reference, current, SETTINGS, seed=13)}


@pytest.mark.parametrize("seed", [2, 3, 4])
def test_a_sample_of_the_same_population_does_not_drift(seed):
    assert set(verdicts(side(80, seed=seed)).values()) == {OK}


def test_longer_texts_drift_in_length_only():
    found = verdicts(side(80, seed=5, words=(60, 100)))
    assert found["input_length_psi"] == DRIFT
    assert found["answer_length_psi"] == OK and found["answer_category_psi"] == OK


def test_new_vocabulary_drifts_in_oov_share_and_divergence():
    half_new = USUAL_WORDS[:200] + NEW_WORDS[:200]
    found = verdicts(side(80, seed=6, vocabulary=half_new))
    assert found["vocabulary_oov"] == DRIFT and found["vocabulary_jsd"] == DRIFT
    assert found["input_length_psi"] == OK


def test_a_different_label_mix_drifts_in_answer_categories():
    found = verdicts(side(80, seed=7, mix=(0.1, 0.1, 0.8)))
    assert found["answer_category_psi"] == DRIFT
    assert found["vocabulary_oov"] == OK


def test_too_few_recorded_rows_is_insufficient_data_not_drift():
    findings = compare(REFERENCE, side(20, seed=8, words=(200, 300)), SETTINGS, seed=13)
    assert {f.verdict for f in findings} == {INSUFFICIENT}
    assert all(f.value is None for f in findings)  # not computed, so nothing to misread
    assert overall(findings) == INSUFFICIENT


def test_statistics_a_task_lacks_are_not_available():
    reference = Side(REFERENCE.texts, [], [])  # a classifier's run: no generated answers
    found = verdicts(side(80, seed=9), reference)
    assert found["answer_length_psi"] == UNAVAILABLE
    assert found["answer_category_psi"] == UNAVAILABLE
    assert found["input_length_psi"] == OK


def test_the_threshold_and_alpha_both_gate_a_drift():
    shifted = side(80, seed=5, words=(60, 100))
    loose = SETTINGS.model_copy(
        update={"thresholds": SETTINGS.thresholds.model_copy(update={"input_length_psi": 50.0})}
    )
    (length, *_) = compare(REFERENCE, shifted, loose, seed=13)
    assert length.verdict == OK and length.p_value is not None
    assert length.p_value < SETTINGS.alpha  # significant, yet too small to count


def test_overall_verdict():
    def finding(verdict: str) -> Finding:
        return Finding("x", verdict, threshold=0.1, reference_rows=100, current_rows=100)

    assert overall([finding(OK), finding(DRIFT)]) == DRIFT
    assert overall([finding(OK), finding(UNAVAILABLE), finding(INSUFFICIENT)]) == OK
    assert overall([finding(UNAVAILABLE), finding(INSUFFICIENT)]) == INSUFFICIENT
