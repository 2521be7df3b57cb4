"""Time rules shared by every feature set, so no feature ever sees its own future.

Each source event has a time ``at`` and a time ``known`` from which features may show it:
a microsecond after ``at`` for a time of day, the next midnight for a bare date (a review
"dated March 1" may have been written at 23:59, so a note at 09:30 that day must not see
it). A feature row dated ``t`` holds every event known at ``t``. Feast joins a training
row dated ``T`` to the latest feature row dated ``<= T``, so a row never sees an event of
its own instant, of its own day when the event has no time, or later.

Feature rows are written at every ``at`` (so the first review of a drug finds a row that
says "0 earlier") and every ``known`` (where the history changes): between those instants
nothing changes, so these rows answer every instant exactly.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

TIMESTAMP = "event_timestamp"  # the feature rows' time column, as Feast names it
JUST_AFTER = pd.Timedelta(microseconds=1)  # parquet keeps microseconds: the next instant
NEXT_DAY = pd.Timedelta(days=1)


def parse_timestamps(values: Iterable[object]) -> pd.Series:
    """Source times (ISO 8601, FHIR partial dates, "May 30, 2011") as UTC; NaT if unreadable.

    A time without a zone is read as UTC and a date as its midnight: the training rows and
    the feature rows go through this same function, so both sides agree.
    """
    series = pd.Series(list(values), dtype="object")
    text = series.map(lambda v: v.strip() if isinstance(v, str) else v).replace("", None)
    parsed = pd.to_datetime(text, format="mixed", utc=True, errors="coerce")
    return parsed.astype("datetime64[us, UTC]")


def _date_only(value: object) -> bool:
    """A bare date: text without a time of day (a time always has a colon), or a date."""
    if isinstance(value, str):
        return ":" not in value
    return isinstance(value, dt.date) and not isinstance(value, dt.datetime)


def known_from(values: Sequence[object], at: pd.Series) -> pd.Series:
    """When each event may first show in a feature (``at`` parsed from ``values``)."""
    delay = [NEXT_DAY if _date_only(v) else JUST_AFTER for v in values]
    return at + pd.to_timedelta(pd.Series(delay, index=at.index, dtype="timedelta64[us]"))


def micros(times: Iterable[pd.Timestamp]) -> np.ndarray:
    """UTC times as int64 microseconds since the epoch: exact, and fast to search."""
    return pd.DatetimeIndex(list(times)).as_unit("us").asi8


def snapshot_times(*groups: Iterable[pd.Timestamp]) -> list[pd.Timestamp]:
    """Sorted distinct times to write feature rows at: every time of every group."""
    return sorted({time for group in groups for time in group})


def known_by(known_sorted: np.ndarray, at: Sequence[pd.Timestamp]) -> np.ndarray:
    """For each time in ``at``, how many events (``known`` sorted, in micros) it may see."""
    return np.searchsorted(known_sorted, micros(at), side="right")
