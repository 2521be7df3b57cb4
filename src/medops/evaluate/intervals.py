"""Percentile bootstrap intervals, one draw of rows shared by every model scored on them.

Test sets are small, so a bare number hides how far noise alone could move it. Every model
of one evaluate run answers the same held-out rows, so one draw of resampled row indices
serves them all: each resample scores the candidate and its comparators on the same rows,
and the interval of a difference is *paired* (a row's shared difficulty cancels). Metrics
are scored from per-row additive counts (:class:`RowScores`), so a thousand resamples are
one matrix product rather than a thousand calls of a metric library.

Flat keys follow the instruct task's names, which the model card reads: ``{prefix}{name}``
with ``_ci_low``/``_ci_high``, and the candidate minus a comparator as ``{name}_diff``
(baseline) or ``{name}_vs_champion_diff`` (champion), with the same two suffixes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse

# side of an evaluate run -> prefix of its flat metric keys
PREFIXES = {
    "model": "",
    "baseline": "baseline_",
    "fewshot": "fewshot_",
    "champion": "champion_",
    "text_only": "text_only_",  # the same model without its context features
}
# comparator -> suffix of the candidate-minus-comparator keys
DIFFERENCES = {
    "baseline": "_diff",
    "champion": "_vs_champion_diff",
    "text_only": "_vs_text_only_diff",
}
CI_LEVEL = "ci_level"  # the flat key saying at what level the intervals were computed


def check_options(resamples: int, level: float) -> None:
    """Refuse settings that would give a meaningless interval rather than a wrong one silently."""
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be strictly between 0 and 1, got {level}")


def draw(rows: int, resamples: int, seed: int) -> np.ndarray:
    """``(resamples, rows)`` row indices drawn with replacement: reproducible for a seed."""
    return np.random.default_rng(seed).integers(0, rows, size=(resamples, rows))


def percentile_interval(samples: np.ndarray, level: float) -> tuple[float, float]:
    """The central ``level`` share of resampled values (NaNs, e.g. an empty slice, ignored)."""
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.nanpercentile(np.asarray(samples, dtype=float), [tail, 100.0 - tail])
    return float(low), float(high)


def bootstrap_ci(
    values: Sequence[float], *, resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[float, float, float]:
    """The mean and its percentile bootstrap interval: how far noise alone could move the mean.

    One ``(resamples, n)`` index draw, so it is vectorised and, for a fixed seed, reproducible.
    Constant values (one value included) give ``(v, v, v)`` exactly, without float drift.
    """
    check_options(resamples, level)
    data = np.asarray(values, dtype=float)
    if data.ndim != 1 or data.size == 0:
        raise ValueError(f"no values to bootstrap: need a non-empty 1-D sequence, got {data.size}")
    if not np.all(np.isfinite(data)):
        raise ValueError(f"{int(np.sum(~np.isfinite(data)))} of {data.size} values are not finite")
    if np.all(data == data[0]):
        value = float(data[0])
        return value, value, value
    means = data[draw(data.size, resamples, seed)].mean(axis=1)
    return (float(data.mean()), *percentile_interval(means, level))


def paired_difference_ci(
    a: Sequence[float],
    b: Sequence[float],
    *,
    resamples: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """Mean of ``a - b`` and its paired bootstrap interval.

    Resampling the per-example differences keeps each prompt's pair together, so the shared
    difficulty of a prompt cancels and the interval is much tighter than comparing two
    independent intervals.
    """
    if len(a) != len(b):
        raise ValueError(f"paired scores need equal lengths: {len(a)} against {len(b)}")
    differences = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    return bootstrap_ci(differences.tolist(), resamples=resamples, seed=seed, level=level)


class Resamples:
    """One bootstrap draw of the held-out rows, shared by every model scored on them."""

    def __init__(self, rows: int, *, resamples: int, seed: int, level: float) -> None:
        check_options(resamples, level)
        if rows < 1:
            raise ValueError("no rows to resample")
        self.rows, self.level = rows, level
        self.indices = draw(rows, resamples, seed)

    @functools.cached_property
    def weights(self) -> np.ndarray:
        """``(resamples, rows)``: how many times each row is in each resample."""
        count, rows = self.indices.shape
        flat = (np.arange(count)[:, None] * rows + self.indices).ravel()
        return np.bincount(flat, minlength=count * rows).reshape(count, rows).astype(float)

    def interval(self, samples: np.ndarray) -> tuple[float, float]:
        return percentile_interval(samples, self.level)


Metrics = Callable[[np.ndarray], dict[str, np.ndarray]]


@dataclass(frozen=True)
class RowScores:
    """One model's per-row additive counts, and the metrics their column totals make.

    The full set, a bootstrap resample and a slice of rows are all scored the same way, by
    summing rows: ``metrics`` maps totals of shape ``(..., columns)`` to arrays of shape
    ``(...)``. ``counts`` may be sparse (a one-hot confusion cell per row).
    """

    counts: Any  # (rows, columns): numpy array or scipy sparse array
    metrics: Metrics

    @property
    def rows(self) -> int:
        return int(self.counts.shape[0])

    def point(self) -> dict[str, float]:
        return self.on(np.arange(self.rows))

    def on(self, rows: np.ndarray) -> dict[str, float]:
        """The metrics of these rows (repeats count again, as in a resample)."""
        totals = np.asarray(self.counts[np.asarray(rows)].sum(axis=0), dtype=float).ravel()
        return {name: float(value) for name, value in self.metrics(totals).items()}

    def resampled(self, resamples: Resamples) -> dict[str, np.ndarray]:
        """Every metric on every resample: ``(resamples,)`` arrays from one product."""
        if resamples.rows != self.rows:
            raise ValueError(f"{self.rows} scored rows but {resamples.rows} resampled rows")
        totals = np.asarray((self.counts.T @ resamples.weights.T).T, dtype=float)
        return self.metrics(totals)


def combine(*parts: RowScores) -> RowScores:
    """Several families of counts on the same rows as one, so one product scores them all."""
    widths = [part.counts.shape[1] for part in parts]
    edges = np.cumsum([0, *widths])

    def metrics(totals: np.ndarray) -> dict[str, np.ndarray]:
        merged: dict[str, np.ndarray] = {}
        for part, start, stop in zip(parts, edges[:-1], edges[1:], strict=True):
            merged.update(part.metrics(totals[..., start:stop]))
        return merged

    counts = sparse.hstack([sparse.csr_array(part.counts) for part in parts], format="csr")
    return RowScores(counts, metrics)


def mean_scores(values: Mapping[str, Sequence[float]]) -> RowScores:
    """Per-row values whose mean is the metric (a validity rate, an exact match, a ROUGE-L)."""
    names = list(values)
    columns = np.column_stack([np.ones(len(values[names[0]])), *(values[n] for n in names)])

    def metrics(totals: np.ndarray) -> dict[str, np.ndarray]:
        rows = totals[..., 0]
        with np.errstate(invalid="ignore", divide="ignore"):
            return {name: totals[..., i + 1] / rows for i, name in enumerate(names)}

    return RowScores(columns, metrics)


def interval_metrics(sides: Mapping[str, RowScores], resamples: Resamples) -> dict[str, float]:
    """Flat MLflow metrics: each side's intervals, and the candidate minus each comparator.

    ``sides`` is keyed as ``PREFIXES`` (``model`` is the candidate); every side is scored on
    the same ``resamples``, which is what makes each difference paired.
    """
    samples = {side: scores.resampled(resamples) for side, scores in sides.items()}
    flat: dict[str, float] = {CI_LEVEL: resamples.level}
    for side, resampled in samples.items():
        for name, values in resampled.items():
            low, high = resamples.interval(values)
            flat[f"{PREFIXES[side]}{name}_ci_low"] = low
            flat[f"{PREFIXES[side]}{name}_ci_high"] = high
    model, point = samples["model"], sides["model"].point()
    for side, suffix in DIFFERENCES.items():
        if side not in samples:
            continue
        other = sides[side].point()
        for name in (name for name in model if name in samples[side]):
            low, high = resamples.interval(model[name] - samples[side][name])
            flat[f"{name}{suffix}"] = point[name] - other[name]
            flat[f"{name}{suffix}_ci_low"] = low
            flat[f"{name}{suffix}_ci_high"] = high
    return flat
