"""The current side: the exchanges the server recorded (``serve.review_queue``).

Only generative endpoints record (the chat routes of causal-lm and instruct versions); a
classifier endpoint records nothing, so its report says there is no traffic to compare.
What is stored is already de-identified: the guard's turns and the released answer.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from medops.errors import ConfigurationError
from medops.monitor.reference import Labels
from medops.monitor.sides import Side, category, sample, user_text, without
from medops.recipe import Recipe
from medops.review.store import FeedbackStore, store_url

_AGO = re.compile(r"^([0-9]+)([mhd])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``7d``, ``24h``, ``30m`` before now, or an ISO date/time (UTC unless it says)."""
    now = now or datetime.now(UTC)
    ago = _AGO.match(text)
    if ago:
        return now - timedelta(**{_UNITS[ago[2]]: int(ago[1])})
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigurationError(
            f"--since {text!r}: give a duration (7d, 24h, 30m) or an ISO date (2026-12-01)"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def window_start(recipe: Recipe, since: str | None) -> datetime | None:
    """``--since`` when given, else ``monitor.drift.window_days`` back, else no limit."""
    if since:
        return parse_since(since)
    days = recipe.monitor.drift.window_days
    return datetime.now(UTC) - timedelta(days=days) if days else None


@dataclass(frozen=True)
class Recorded:
    """The recorded exchanges chosen for the report, and how many each served name had."""

    rows: list[dict[str, Any]]
    by_model: dict[str, int]


def recorded(recipe: Recipe, since: datetime | None) -> Recorded:
    """Unexpired exchanges of this recipe's served names (a shared store holds others)."""
    served = {recipe.serve.model_name, *recipe.serve.adapters}
    rows = [
        row
        for row in FeedbackStore(store_url(recipe)).queued()
        if row["served_model"] in served and (since is None or _aware(row["created_at"]) >= since)
    ]
    return Recorded(rows, dict(Counter(row["served_model"] for row in rows)))


def current_side(recipe: Recipe, rows: list[dict[str, Any]], labels: Labels | None) -> Side:
    """Inputs (the users' turns less the task's own prompt) and answers, sampled."""
    lm = getattr(recipe, "lm", None)
    prompt = lm.prompt_words() if lm is not None else []
    rows = sample(rows, recipe.monitor.drift.max_rows, recipe.seed)
    answers = [row["answer"] for row in rows]
    return Side(
        [without(user_text(row["messages"]), prompt) for row in rows],
        answers,
        [category(a, labels.field, labels.classes) for a in answers] if labels else [],
    )


def _aware(when: datetime) -> datetime:
    """SQLite gives stored times back without their zone; they were written in UTC."""
    return when if when.tzinfo else when.replace(tzinfo=UTC)
