"""Context features as head columns: standardised numbers, one-hot strings, a missing flag."""

from __future__ import annotations

import numpy as np
import pytest

from medops.model.side_inputs import MAX_VALUES, SideInputs

TRAIN = [
    {"reviews_before": 0, "mean_rating_before": None, "top_condition_before": None},
    {"reviews_before": 2, "mean_rating_before": 6.0, "top_condition_before": "Anxiety"},
    {"reviews_before": 4, "mean_rating_before": 8.0, "top_condition_before": "Pain"},
    {"reviews_before": 6, "mean_rating_before": float("nan"), "top_condition_before": "Pain"},
]


def test_fit_types_each_feature_by_its_values() -> None:
    side = SideInputs.fit(TRAIN)
    assert side.numeric == {
        "reviews_before": (3.0, pytest.approx(np.sqrt(5))),
        "mean_rating_before": (7.0, 1.0),
    }
    assert side.categorical == {"top_condition_before": ["Pain", "Anxiety"]}  # most frequent first
    assert side.width == 2 + 2 + (1 + 2)


def test_transform_standardises_and_flags_what_is_missing() -> None:
    side = SideInputs.fit(TRAIN)
    row = side.transform(
        [{"reviews_before": 3, "mean_rating_before": None, "top_condition_before": "Acne"}]
    )[0]
    # reviews_before: (3 - 3) / std, present; mean_rating_before: missing; Acne: unseen value
    assert row.tolist() == [0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]
    pain = side.transform(
        [{"reviews_before": 6, "mean_rating_before": 8.0, "top_condition_before": "Pain"}]
    )[0]
    assert pain[0] == pytest.approx(3 / np.sqrt(5)) and pain[2] == pytest.approx(1.0)
    assert pain[4:].tolist() == [0.0, 1.0, 0.0]


def test_no_context_at_all_is_every_feature_missing() -> None:
    side = SideInputs.fit(TRAIN)
    assert side.transform([None]).tolist() == side.transform([{}]).tolist()
    assert side.transform([None])[0].tolist() == [0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0]


def test_round_trip_and_the_one_hot_cap() -> None:
    many = [{"code": f"c{i:03d}", "n": i} for i in range(MAX_VALUES + 10)]
    side = SideInputs.fit(many)
    assert len(side.categorical["code"]) == MAX_VALUES
    again = SideInputs.from_dict(side.to_dict())
    assert again == side
    np.testing.assert_array_equal(again.transform(many), side.transform(many))
