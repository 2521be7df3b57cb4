"""Slices: fairlearn MetricFrame per group, paired differences, small groups flagged."""

from __future__ import annotations

import pytest

from medops.evaluate.metrics import label_scores
from medops.evaluate.slices import gate_metrics, metric_safe, slice_metrics, slice_values

CLASSES = ["Acne", "Pain"]


def _sides() -> tuple[dict, list[str]]:
    """40 English rows the model gets right, 10 French rows it gets half wrong; the
    baseline is wrong on every 4th row everywhere."""
    gold = [CLASSES[i % 2] for i in range(50)]
    model = [g if i < 40 or i % 2 else CLASSES[(i + 1) % 2] for i, g in enumerate(gold)]
    base = [CLASSES[(i + 1) % 2] if i % 4 == 0 else g for i, g in enumerate(gold)]
    sides = {
        "model": label_scores(gold, model, CLASSES),
        "baseline": label_scores(gold, base, CLASSES),
    }
    return sides, ["en"] * 40 + ["fr"] * 10


def _slices(seed: int = 13, min_rows: int = 30) -> dict:
    sides, languages = _sides()
    return slice_metrics(
        sides,
        {"language": languages},
        ["accuracy"],
        resamples=60,
        seed=seed,
        level=0.95,
        min_rows=min_rows,
    )


def test_each_group_is_scored_with_an_interval_and_small_groups_are_flagged() -> None:
    groups = _slices()["language"]
    assert set(groups) == {"en", "fr"}
    assert (groups["en"]["rows"], groups["en"]["small"]) == (40, False)
    assert (groups["fr"]["rows"], groups["fr"]["small"]) == (10, True), "flagged, not hidden"
    assert groups["en"]["accuracy"]["value"] == 1.0
    assert groups["fr"]["accuracy"]["value"] == 0.5
    fr = groups["fr"]["accuracy"]
    assert fr["ci_low"] < fr["value"] < fr["ci_high"]
    # the paired difference is the candidate minus the baseline on the group's rows
    assert groups["en"]["accuracy_diff"]["value"] == pytest.approx(1.0 - 0.75)
    assert groups["fr"]["accuracy_diff"]["value"] == pytest.approx(
        0.5 - 0.7
    )  # baseline wrong on rows 40, 44, 48


def test_slices_are_deterministic_for_a_seed() -> None:
    assert _slices(seed=3) == _slices(seed=3)
    assert _slices(seed=3) != _slices(seed=4)


def test_gate_metrics_are_flat_numbers_for_the_gate_metric_only() -> None:
    flat = gate_metrics(_slices(), "accuracy")
    assert flat["slice_language_fr_rows"] == 10.0
    assert flat["slice_language_fr_accuracy"] == 0.5
    assert {"slice_language_fr_accuracy_ci_low", "slice_language_fr_accuracy_ci_high"} <= set(flat)
    assert not any("diff" in key for key in flat)


def test_group_values_become_safe_distinct_metric_names() -> None:
    keys = metric_safe(["Birth Control", "birth/control", "Birth_Control", "", "é"])
    assert keys["Birth Control"] == "Birth_Control"
    assert len(set(keys.values())) == 5, "values that would collide stay apart"
    assert all(k and all(c.isalnum() or c in "_.-" for c in k) for k in keys.values())
    assert keys[""] == "unknown"


def test_slice_values_follow_prepare_for_language_and_read_carried_fields() -> None:
    rows = [
        {"id": "1", "text": "La patiente a une douleur avec fièvre dans le dos", "label": "Pain"},
        {
            "id": "2",
            "text": "The patient has pain in the back",
            "label": "Pain",
            "fields": {"drug": "Advil"},
        },
    ]
    assert slice_values(rows, "language", "auto") == ["fr", "en"]
    assert slice_values(rows, "language", "en") == ["en", "en"], "a fixed language wins"
    assert slice_values(rows, "drug", "en") == ["unknown", "Advil"]


def test_slice_values_read_a_context_feature_when_no_field_carries_it() -> None:
    rows = [
        {"text": "a", "context": {"age_band": "60-69", "conditions_before": 2}},
        {"text": "b", "context": {"age_band": None}},
        {"text": "c"},
    ]
    assert slice_values(rows, "age_band", "en") == ["60-69", "unknown", "unknown"]
