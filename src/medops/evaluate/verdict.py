"""The worded comparison of a candidate with a model scored on the same rows.

A point difference of +0.018 reads as a win; with a paired interval of [-0.03, +0.07] it is
noise. The gate, the run summary, the evaluate report and decision.json all word it the
same way: "better" when the whole interval is above 0, "worse" when it is below, and
"not distinguishable" otherwise, always with the interval.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

from medops.evaluate.intervals import CI_LEVEL, DIFFERENCES, PREFIXES

DEFAULT_LEVEL = 0.95  # the level of intervals from an evaluate stage that does not record one


def level_of(metrics: Mapping[str, float]) -> float:
    return float(metrics.get(CI_LEVEL, DEFAULT_LEVEL))


@dataclass(frozen=True)
class Comparison:
    metric: str
    against: str  # "baseline" or "champion"
    value: float
    other: float
    difference: float
    ci_low: float
    ci_high: float
    level: float

    @property
    def verdict(self) -> str:
        if self.ci_low > 0:
            return "better"
        if self.ci_high < 0:
            return "worse"
        return "not distinguishable"

    def text(self) -> str:
        """E.g. ``macro_f1 0.755 vs baseline 0.737: not distinguishable (difference +0.018,
        95% CI [-0.030, +0.070])``."""
        return (
            f"{self.metric} {self.value:.3f} vs {self.against} {self.other:.3f}: {self.verdict} "
            f"(difference {self.difference:+.3f}, {self.level * 100:g}% CI "
            f"[{self.ci_low:+.3f}, {self.ci_high:+.3f}])"
        )

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "verdict": self.verdict, "text": self.text()}

    @classmethod
    def read(cls, metrics: Mapping[str, float], metric: str, against: str) -> Comparison | None:
        """The comparison from flat evaluate metrics; None where its interval was not computed."""
        difference = f"{metric}{DIFFERENCES[against]}"
        keys = (metric, f"{PREFIXES[against]}{metric}", difference)
        bounds = (f"{difference}_ci_low", f"{difference}_ci_high")
        if any(key not in metrics for key in (*keys, *bounds)):
            return None
        value, other, diff = (float(metrics[key]) for key in keys)
        low, high = (float(metrics[key]) for key in bounds)
        return cls(metric, against, value, other, diff, low, high, level_of(metrics))
