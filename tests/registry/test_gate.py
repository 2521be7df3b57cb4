import json

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


def _interval(low: float, high: float, diff: float = 0.018) -> dict[str, float]:
    """macro_f1 0.755 against a baseline of 0.737, with the paired interval of the gain."""
    return {
        "macro_f1": 0.755,
        "baseline_macro_f1": 0.737,
        "macro_f1_diff": diff,
        "macro_f1_diff_ci_low": low,
        "macro_f1_diff_ci_high": high,
        "ci_level": 0.95,
    }


def test_a_gain_within_noise_is_worded_and_refused_when_significance_is_asked() -> None:
    metrics = _interval(-0.03, 0.07)
    lenient = decide(Gate(min_value=0.7), metrics)
    assert lenient.passed, "point checks alone pass"
    worded = (
        "macro_f1 0.755 vs baseline 0.737: not distinguishable "
        "(difference +0.018, 95% CI [-0.030, +0.070])"
    )
    assert worded in lenient.reason and lenient.verdicts == [worded]
    refused = decide(Gate(min_value=0.7, significant=True), metrics)
    assert not refused.passed
    assert (
        "macro_f1_diff_ci_low -0.0300 <= 0 (no gain over the baseline beyond noise)"
        in refused.reason
    )
    record = refused.to_dict()
    assert record["comparisons"][0]["verdict"] == "not distinguishable"
    assert json.loads(json.dumps(record)) == record, "decision.json and the audit log take it"


def test_interval_against_baseline_respects_the_margin() -> None:
    gate = Gate(min_value=0.7, interval_against=["baseline"], margin=0.02)
    better_by_little = decide(gate, _interval(0.01, 0.05, diff=0.03))
    assert not better_by_little.passed
    assert (
        "0.0100 <= 0.02 (gain over the baseline not beyond the margin 0.02)"
        in better_by_little.reason
    )
    assert "better (difference +0.030" in better_by_little.reason
    passed = decide(gate, _interval(0.025, 0.05, diff=0.03))
    assert passed.passed and "gain interval above 0.02 (0.0250)" in passed.reason


def test_not_worse_accepts_a_loss_within_the_margin_only() -> None:
    gate = Gate(min_value=0.7, interval_against=["baseline"], require="not_worse", margin=0.05)
    assert decide(gate, _interval(-0.04, 0.07)).passed
    refused = decide(gate, _interval(-0.06, 0.07))
    assert not refused.passed
    assert "may be worse than the baseline by more than the margin 0.05" in refused.reason


def test_the_gate_refuses_intervals_at_another_level() -> None:
    gate = Gate(min_value=0.7, interval_against=["baseline"], confidence=0.9)
    with pytest.raises(ConfigurationError, match="gate.confidence is 0.9 but .* 0.95 intervals"):
        decide(gate, _interval(0.01, 0.05))


def test_the_champion_interval_decides_only_once_a_champion_was_scored() -> None:
    gate = Gate(min_value=0.1, against_champion=True, interval_against=["champion"])
    metrics = {**_interval(0.01, 0.05), "champion_exists": 0.0}
    assert decide(gate, metrics).passed, "nothing to beat yet"
    champion = {
        "champion_exists": 1.0,
        "champion_macro_f1": 0.75,
        "macro_f1_vs_champion_diff": 0.005,
        "macro_f1_vs_champion_diff_ci_low": -0.02,
        "macro_f1_vs_champion_diff_ci_high": 0.03,
    }
    refused = decide(gate, {**metrics, **champion})
    assert not refused.passed and "no gain over the champion beyond noise" in refused.reason
    assert [c.against for c in refused.comparisons] == ["baseline", "champion"]
    assert "vs champion 0.750: not distinguishable" in refused.reason


def _slices(fr_value: float, fr_rows: float, de_rows: float = 12.0) -> dict[str, float]:
    return {
        "macro_f1": 0.8,
        "baseline_macro_f1": 0.7,
        "slice_language_en_rows": 200.0,
        "slice_language_en_macro_f1": 0.82,
        "slice_language_fr_rows": fr_rows,
        "slice_language_fr_macro_f1": fr_value,
        "slice_language_de_rows": de_rows,
        "slice_language_de_macro_f1": 0.1,
    }


def test_a_slice_below_the_floor_fails_the_gate_naming_the_slice() -> None:
    gate = Gate(min_value=0.7, slice_floor=0.7)
    refused = decide(gate, _slices(0.61, 42.0))
    assert not refused.passed
    assert "slice language_fr: macro_f1 0.6100 < floor 0.7000 (42 rows)" in refused.reason
    assert "language_de" not in refused.reason, "a small slice never gates"
    assert decide(Gate(min_value=0.7), _slices(0.61, 42.0)).passed, "no floor by default"


def test_small_slices_are_named_not_gated() -> None:
    passed = decide(Gate(min_value=0.7, slice_floor=0.7), _slices(0.61, 29.0))
    assert passed.passed
    assert "too small to gate: language_de (12 rows), language_fr (29 rows)" in passed.reason
    gate = Gate(min_value=0.7, slice_floor=0.7, min_slice_rows=10)
    assert "slice language_de: macro_f1 0.1000" in decide(gate, _slices(0.9, 29.0)).reason


def test_a_slice_floor_needs_slices() -> None:
    with pytest.raises(ConfigurationError, match="does not report slices"):
        decide(Gate(slice_floor=0.5), {"macro_f1": 0.8, "baseline_macro_f1": 0.7})


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"significant": True, "require": "not_worse"}, "list the comparators in interval_against"),
        ({"interval_against": ["champion"]}, "needs against_champion"),
    ],
)
def test_incoherent_interval_settings_are_refused(fields: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Gate(**fields)
