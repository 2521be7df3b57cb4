import pytest

from medops.errors import ConfigurationError
from medops.recipe import Gate
from medops.registry.gate import decide


def test_passes_above_threshold_and_baseline() -> None:
    decision = decide(Gate(min_value=0.7), {"macro_f1": 0.8, "baseline_macro_f1": 0.75})
    assert decision.passed
    assert "0.8000 >= threshold 0.7000 and >= baseline 0.7500" in decision.reason


def test_each_failure_is_named() -> None:
    decision = decide(Gate(min_value=0.85), {"macro_f1": 0.8, "baseline_macro_f1": 0.81})
    assert not decision.passed
    assert "macro_f1 0.8000 < threshold 0.8500" in decision.reason
    assert "macro_f1 0.8000 < baseline 0.8100" in decision.reason


def test_baseline_check_can_be_turned_off() -> None:
    gate = Gate(min_value=0.5, not_below_baseline=False)
    assert decide(gate, {"macro_f1": 0.6, "baseline_macro_f1": 0.9}).passed


def test_missing_metric_is_named() -> None:
    with pytest.raises(ConfigurationError, match="baseline_accuracy"):
        decide(Gate(metric="accuracy"), {"accuracy": 0.9})


def test_every_also_metric_must_not_fall_below_its_baseline() -> None:
    gate = Gate(
        metric="condition_macro_f1", min_value=0.3, also_not_below_baseline=["json_validity"]
    )
    metrics = {
        "condition_macro_f1": 0.6,
        "baseline_condition_macro_f1": 0.1,
        "json_validity": 0.7,
        "baseline_json_validity": 0.9,
    }
    decision = decide(gate, metrics)
    assert not decision.passed
    assert "json_validity 0.7000 < baseline 0.9000" in decision.reason
    assert decide(gate, {**metrics, "json_validity": 0.95}).passed
    with pytest.raises(ConfigurationError, match="baseline_json_validity"):
        decide(gate, {k: v for k, v in metrics.items() if k != "baseline_json_validity"})


def test_significant_asks_for_a_gain_beyond_noise() -> None:
    gate = Gate(metric="rouge_l", min_value=0.2, significant=True)
    metrics = {"rouge_l": 0.5, "baseline_rouge_l": 0.4, "rouge_l_diff_ci_low": 0.0}
    refused = decide(gate, metrics)
    assert not refused.passed and "rouge_l_diff_ci_low 0.0000 <= 0" in refused.reason
    passed = decide(gate, {**metrics, "rouge_l_diff_ci_low": 0.02})
    assert passed.passed and "gain interval above 0 (0.0200)" in passed.reason
    with pytest.raises(ConfigurationError, match="rouge_l_diff_ci_low"):
        decide(gate, {"rouge_l": 0.5, "baseline_rouge_l": 0.4})


def test_against_champion_moves_the_alias_only_for_a_better_candidate() -> None:
    gate = Gate(metric="rouge_l", min_value=0.1, against_champion=True)
    base = {"rouge_l": 0.5, "baseline_rouge_l": 0.3}
    assert decide(gate, {**base, "champion_exists": 0.0}).passed, "nothing to beat yet"
    worse = decide(gate, {**base, "champion_exists": 1.0, "champion_rouge_l": 0.5})
    assert not worse.passed and "rouge_l 0.5000 <= champion 0.5000" in worse.reason
    better = {**base, "champion_exists": 1.0, "champion_rouge_l": 0.4}
    assert decide(gate, better).passed
    noisy = Gate(metric="rouge_l", min_value=0.1, against_champion=True, significant=True)
    gains = {"rouge_l_diff_ci_low": 0.1, "rouge_l_vs_champion_diff_ci_low": -0.02}
    refused = decide(noisy, {**better, **gains})
    assert not refused.passed and "no gain over the champion beyond noise" in refused.reason
    with pytest.raises(ConfigurationError, match="does not score the champion"):
        decide(gate, base)
