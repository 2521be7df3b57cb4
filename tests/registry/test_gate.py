import pytest

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
    with pytest.raises(KeyError, match="baseline_accuracy"):
        decide(Gate(metric="accuracy"), {"accuracy": 0.9})
