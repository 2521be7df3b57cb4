"""What an evaluate stage adds to its point numbers: intervals, paired differences, slices.

The classification and causal-LM stages score each side (candidate, baseline...) as
:class:`RowScores` on the same held-out rows and hand them here with the recipe's settings:
the ``evaluate`` section, the run's ``seed``, and the gate's ``confidence`` and
``min_slice_rows``, so the intervals are at the level the gate decides at.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from medops.evaluate.intervals import Resamples, RowScores, interval_metrics
from medops.evaluate.slices import gate_metrics, slice_metrics, slice_values
from medops.recipe import Evaluation, Gate


@dataclass(frozen=True)
class Uncertainty:
    intervals: dict[str, float]  # flat: *_ci_low/_ci_high, *_diff..., ci_level
    slices: dict[str, dict[str, dict[str, Any]]]  # attribute -> group -> metrics

    def manifest_metrics(self, metric: str) -> dict[str, float]:
        """Every interval, and of the slices only what the gate reads (``metric`` and rows)."""
        return {**self.intervals, **gate_metrics(self.slices, metric)}


def measure(
    sides: Mapping[str, RowScores],
    rows: Sequence[Mapping[str, Any]],
    slice_names: Sequence[str],
    *,
    evaluation: Evaluation,
    gate: Gate,
    seed: int,
    language: str,
) -> Uncertainty:
    """Intervals of every side's metrics and slices of ``slice_names`` (the gate's metric
    first); ``rows`` are the scored prepared rows, in the sides' order."""
    level = gate.confidence
    resamples = Resamples(
        len(rows), resamples=evaluation.bootstrap_resamples, seed=seed, level=level
    )
    groups = {name: slice_values(rows, name, language) for name in evaluation.slices}
    scored = sides["model"].point()
    slices = slice_metrics(
        sides,
        groups,
        [name for name in dict.fromkeys([gate.metric, *slice_names]) if name in scored],
        resamples=evaluation.slice_resamples,
        seed=seed,
        level=level,
        min_rows=gate.min_slice_rows,
    )
    return Uncertainty(interval_metrics(sides, resamples), slices)
