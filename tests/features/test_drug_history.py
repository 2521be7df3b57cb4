"""The drug entity's history on a hand-made table: counts, means and the most frequent
earlier condition, strictly before each date, ties broken alphabetically."""

from __future__ import annotations

import math
from collections.abc import Callable

import pandas as pd
import pytest

from medops.features.asof import TIMESTAMP, parse_timestamps
from medops.features.drug_history import drug_history, rating_score, read_reviews, running_mode
from medops.recipe import Recipe

# (drug, condition, rating, date)
REVIEWS = [
    ("Zoloft", "Depression", "10", "January 1, 2020"),
    ("Zoloft", "Anxiety", "2", "January 1, 2020"),  # same day: neither sees the other
    ("Zoloft", "Anxiety", "n/a", "February 1, 2020"),  # counted, but no rating to average
    ("Zoloft", "Depression", "4", "March 1, 2020"),
    ("Zoloft", "", "6", "April 1, 2020"),  # no condition: not in the most frequent
    ("Advil", "Pain", "positive", "2019-06-01"),  # sentiment words are scored +1/0/-1
    ("Advil", "Pain", "negative", "2019-07-01"),
    ("", "Pain", "5", "2019-07-01"),  # no drug: skipped, counted
    ("Advil", "Pain", "5", "not a date"),  # skipped, counted
]


def _as_of(history: pd.DataFrame, drug: str, when: str) -> dict[str, object] | None:
    """What a point-in-time join returns: the latest row at or before ``when``."""
    at = parse_timestamps([when]).iloc[0]
    rows = history[(history["drug"] == drug) & (history[TIMESTAMP] <= at)]
    return None if rows.empty else rows.iloc[-1].to_dict()


@pytest.fixture
def history(drug_recipe: Callable[..., Recipe]) -> pd.DataFrame:
    recipe = drug_recipe(REVIEWS)
    assert recipe.features is not None
    return drug_history(read_reviews(recipe, recipe.features.columns).frame)


@pytest.mark.parametrize(
    ("when", "count", "mean", "top"),
    [
        ("2020-01-01", 0, None, None),  # the first day's reviews see nothing
        ("2020-01-15", 2, 6.0, "Anxiety"),  # 1 Depression, 1 Anxiety: alphabetical tie-break
        ("2020-02-01", 2, 6.0, "Anxiety"),  # the Feb review does not see itself
        ("2020-02-02", 3, 6.0, "Anxiety"),  # n/a counts, but is not averaged
        ("2020-03-01T23:59:59Z", 3, 6.0, "Anxiety"),
        ("2020-03-02", 4, 16 / 3, "Anxiety"),  # 2 Anxiety, 2 Depression: still the tie-break
        ("2021-01-01", 5, 22 / 4, "Anxiety"),  # a blank condition is not a condition
    ],
)
def test_zoloft_history_as_of_each_date(
    history: pd.DataFrame, when: str, count: int, mean: float | None, top: str | None
) -> None:
    row = _as_of(history, "Zoloft", when)
    assert row is not None
    assert row["reviews_before"] == count
    if mean is None:
        assert pd.isna(row["mean_rating_before"])
    else:
        assert row["mean_rating_before"] == pytest.approx(mean)
    assert (None if pd.isna(row["top_condition_before"]) else row["top_condition_before"]) == top


def test_before_the_first_review_there_is_no_row(history: pd.DataFrame) -> None:
    assert _as_of(history, "Zoloft", "2019-12-31") is None
    assert _as_of(history, "Unknown", "2030-01-01") is None


def test_sentiment_ratings_average_on_their_own_scale(history: pd.DataFrame) -> None:
    row = _as_of(history, "Advil", "2019-08-01")
    assert row is not None
    assert (row["reviews_before"], row["mean_rating_before"]) == (2, 0.0)
    assert row["top_condition_before"] == "Pain"


def test_unusable_rows_are_counted_not_lost(drug_recipe: Callable[..., Recipe]) -> None:
    recipe = drug_recipe(REVIEWS)
    assert recipe.features is not None
    reviews = read_reviews(recipe, recipe.features.columns)
    assert reviews.rows_in == len(REVIEWS)
    assert reviews.skipped == {"no_drug": 1, "unreadable_date": 1}
    assert len(reviews.frame) + sum(reviews.skipped.values()) == reviews.rows_in


def test_only_train_reviews_feed_the_history(drug_recipe: Callable[..., Recipe]) -> None:
    """A held-out review's rating is a target of the extraction task: it must not leak."""
    recipe = drug_recipe(REVIEWS[:2], test=[("Zoloft", "Acne", "1", "2019-01-01")])
    assert recipe.features is not None
    frame = read_reviews(recipe, recipe.features.columns).frame
    assert len(frame) == 2 and "Acne" not in set(frame["condition"])


def test_running_mode_breaks_ties_alphabetically() -> None:
    assert running_mode(["b", "a", "", "c", "c", "a"]) == [None, "b", "a", "a", "a", "c", "a"]


def test_rating_scores() -> None:
    assert [rating_score(v) for v in ("7", 3, " Positive ", "neutral", "NEGATIVE")] == [
        7.0,
        3.0,
        1.0,
        0.0,
        -1.0,
    ]
    assert all(math.isnan(rating_score(v)) for v in ("", None, "n/a", "inf"))


def test_a_renamed_column_is_a_recipe_error(drug_recipe: Callable[..., Recipe]) -> None:
    from medops.errors import MedopsError

    recipe = drug_recipe(REVIEWS, columns={"drug": "medication"})
    assert recipe.features is not None
    with pytest.raises(MedopsError, match=r"features\.columns\.drug: column 'medication'"):
        read_reviews(recipe, recipe.features.columns)
