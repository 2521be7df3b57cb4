"""The drug entity of the drug-review demo: each drug's history as of a date.

As of time ``t`` a drug has: the number of its reviews known at ``t``, their mean rating,
and their most frequent condition. Strictly earlier: a review dated a day (Drugs.com's
dates) is known from the next midnight, so it never sees itself, a review of the same day,
or a later one (``asof``). Only sources of role ``train`` feed
the history: in the extraction demo the rating *is* a target (sentiment), so a held-out
review's rating must not reach any feature.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from medops.features.asof import (
    TIMESTAMP,
    known_by,
    known_from,
    micros,
    parse_timestamps,
    snapshot_times,
)
from medops.features.errors import FeatureConfigError
from medops.features.sources import table_columns, table_rows
from medops.recipe import FeatureColumns, Recipe, Source

JOIN_KEY = "drug"
# the demo subset holds sentiment words where Drugs.com has 1-10: scored on their own scale
SENTIMENT_SCORES = {"positive": 1.0, "neutral": 0.0, "negative": -1.0}


@dataclass
class DrugReviews:
    """The reviews that feed the history, and how many source rows could not."""

    frame: pd.DataFrame  # drug, time, known, rating (NaN if none), condition ("" if none)
    rows_in: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> rows


def rating_score(value: Any) -> float:
    """A rating as a number: numbers as they are, sentiment words scored; else NaN."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text in SENTIMENT_SCORES:
            return SENTIMENT_SCORES[text]
        value = text
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number if math.isfinite(number) else math.nan


def _check_columns(source: Source, columns: FeatureColumns) -> None:
    present = table_columns(source)
    missing = [(key, col) for key, col in columns.model_dump().items() if col not in present]
    if present and missing:
        key, column = missing[0]
        raise FeatureConfigError(
            f"features.columns.{key}: column {column!r} is not in source {source.uri}; "
            f"columns present: {', '.join(repr(c) for c in present)}"
        )


def read_reviews(recipe: Recipe, columns: FeatureColumns) -> DrugReviews:
    """The train sources' reviews; a row without a drug or a readable date is skipped and
    counted (rows_in = used + skipped), never silently lost."""
    label_map = recipe.data.label_map  # the recipe's spelling fixes apply to conditions too
    drugs, dates, ratings, conditions = [], [], [], []
    out = DrugReviews(frame=pd.DataFrame())
    for source in (s for s in recipe.data.sources if s.role == "train"):
        _check_columns(source, columns)
        for row in table_rows(source):
            out.rows_in += 1
            condition = str(row.get(columns.condition) or "").strip()
            drugs.append(str(row.get(columns.drug) or "").strip())
            dates.append(row.get(columns.date))
            ratings.append(rating_score(row.get(columns.rating)))
            conditions.append(label_map.get(condition, condition))
    times = parse_timestamps(dates)
    frame = pd.DataFrame(
        {
            "drug": drugs,
            "time": times,
            "known": known_from(dates, times),
            "rating": ratings,
            "condition": conditions,
        }
    )
    no_drug, no_date = frame["drug"] == "", frame["time"].isna()
    out.skipped = {
        "no_drug": int(no_drug.sum()),
        "unreadable_date": int((no_date & ~no_drug).sum()),
    }
    out.frame = frame[~no_drug & ~no_date].reset_index(drop=True)
    return out


def running_mode(values: Iterable[str]) -> list[str | None]:
    """Most frequent of the first k values, for every k (index 0: none yet); blanks do not
    count. Ties go to the alphabetically first, so reruns and machines agree."""
    counts: Counter[str] = Counter()
    best: str | None = None
    modes: list[str | None] = [None]
    for value in values:
        if value:
            counts[value] += 1
            top = counts[best] if best is not None else 0
            if counts[value] > top or (counts[value] == top and best is not None and value < best):
                best = value
        modes.append(best)
    return modes


def _drug_rows(drug: str, reviews: pd.DataFrame) -> dict[str, list[Any]]:
    """Feature rows of one drug, its reviews sorted by when they became known."""
    ratings = reviews["rating"].to_numpy(dtype=float)
    rated = np.concatenate([[0], np.cumsum(~np.isnan(ratings))])
    totals = np.concatenate([[0.0], np.cumsum(np.nan_to_num(ratings))])
    modes = running_mode(reviews["condition"])
    at = snapshot_times(reviews["time"], reviews["known"])
    earlier = known_by(micros(reviews["known"]), at)
    return {
        JOIN_KEY: [drug] * len(at),
        TIMESTAMP: at,
        "reviews_before": earlier.tolist(),
        "mean_rating_before": [totals[k] / rated[k] if rated[k] else None for k in earlier],
        "top_condition_before": [modes[k] for k in earlier],
    }


def drug_history(reviews: pd.DataFrame) -> pd.DataFrame:
    """Feature rows (drug, event_timestamp, reviews_before, mean_rating_before,
    top_condition_before) from reviews (drug, time, known, rating, condition)."""
    ordered = reviews.sort_values(["drug", "known", "condition"], kind="stable")
    parts: dict[str, list[Any]] = {}
    for drug, group in ordered.groupby("drug", sort=True):
        for name, values in _drug_rows(str(drug), group).items():
            parts.setdefault(name, []).extend(values)
    return _typed(parts)


_DTYPES = {
    JOIN_KEY: "string",
    TIMESTAMP: "datetime64[us, UTC]",
    "reviews_before": "Int64",
    "mean_rating_before": "Float64",
    "top_condition_before": "string",
}


def _typed(parts: Mapping[str, list[Any]]) -> pd.DataFrame:
    """Nullable typed columns: parquet then says int, float or string, as Feast declares."""
    columns = {name: pd.Series(parts.get(name, []), dtype=t) for name, t in _DTYPES.items()}
    return pd.DataFrame(columns)
