"""The promotion gate: a model version gets the serving alias only when this says so.

Point checks (a threshold, not below the baseline) are joined by decisions on the paired
interval of the difference from a comparator scored on the same rows (``interval_against``,
``require``, ``margin``, ``confidence``) and by a floor on every slice large enough to
measure. Every comparison the evaluate stage computed an interval for is worded ("better",
"not distinguishable", "worse") in the decision, whether or not the gate relies on it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from medops.errors import ConfigurationError
from medops.evaluate.intervals import DIFFERENCES
from medops.evaluate.verdict import Comparison, level_of
from medops.recipe import Gate

SLICE, ROWS = "slice_", "_rows"


@dataclass(frozen=True)
class Decision:
    passed: bool
    metric: str
    value: float
    baseline: float
    threshold: float
    reason: str
    comparisons: tuple[Comparison, ...] = ()  # every paired interval evaluate computed

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "comparisons": [c.to_dict() for c in self.comparisons]}

    @property
    def verdicts(self) -> list[str]:
        return [c.text() for c in self.comparisons]


def _require(metrics: dict[str, float], keys: list[str]) -> None:
    for needed in keys:
        if needed not in metrics:
            raise ConfigurationError(
                f"gate needs metric {needed!r}; the evaluate manifest has {sorted(metrics)}"
            )


def _champion_scored(gate: Gate, metrics: dict[str, float]) -> bool:
    """Whether a champion was scored in this run (False: none holds the alias yet)."""
    if not gate.against_champion:
        return False
    if "champion_exists" not in metrics:
        raise ConfigurationError(
            "gate.against_champion: the evaluate manifest has no champion_exists; this task's "
            "evaluate stage does not score the champion"
        )
    return bool(metrics["champion_exists"])


def interval_comparators(gate: Gate, champion: bool) -> list[str]:
    """Comparators whose paired interval decides, in order; ``significant`` asks for both."""
    wanted = set(gate.interval_against)
    if gate.significant:
        wanted |= {"baseline", "champion"} if gate.against_champion else {"baseline"}
    return [side for side in DIFFERENCES if side in wanted and (side != "champion" or champion)]


def _check_level(gate: Gate, metrics: dict[str, float]) -> None:
    level = level_of(metrics)
    if not math.isclose(level, gate.confidence):
        raise ConfigurationError(
            f"gate.confidence is {gate.confidence:g} but the evaluate stage computed "
            f"{level:g} intervals: evaluate again with this recipe"
        )


def _bound(gate: Gate) -> float:
    """The lowest admissible end of the difference's interval."""
    return gate.margin if gate.require == "better" else -gate.margin


def _interval_failure(gate: Gate, metrics: dict[str, float], against: str) -> str | None:
    low_key = f"{gate.metric}{DIFFERENCES[against]}_ci_low"
    low, bound = metrics[low_key], _bound(gate)
    if low > bound:
        return None
    if gate.require == "not_worse":
        why = f"may be worse than the {against} by more than the margin {gate.margin:g}"
    elif gate.margin:
        why = f"gain over the {against} not beyond the margin {gate.margin:g}"
    else:
        why = f"no gain over the {against} beyond noise"
    return f"{low_key} {low:.4f} <= {bound:g} ({why})"


def _interval_success(gate: Gate, metrics: dict[str, float], against: str) -> str:
    low = metrics[f"{gate.metric}{DIFFERENCES[against]}_ci_low"]
    kind = "gain" if gate.require == "better" else "difference"
    over = " over the champion" if against == "champion" else ""
    return f", {kind} interval{over} above {_bound(gate):g} ({low:.4f})"


def slice_names(metrics: dict[str, float]) -> list[str]:
    """Slices the evaluate stage reported, as ``<attribute>_<group>`` (``language_fr``)."""
    return sorted(
        key[len(SLICE) : -len(ROWS)]
        for key in metrics
        if key.startswith(SLICE) and key.endswith(ROWS)
    )


def _slice_floor(gate: Gate, metrics: dict[str, float]) -> tuple[list[str], str]:
    """Failures of slices below ``slice_floor``, and a note for the passing reason (which
    names the small slices the floor did not apply to)."""
    if gate.slice_floor is None:
        return [], ""
    names = slice_names(metrics)
    if not names:
        raise ConfigurationError(
            "gate.slice_floor: the evaluate manifest has no slice metrics; this task's "
            "evaluate stage does not report slices"
        )
    _require(metrics, [f"{SLICE}{name}_{gate.metric}" for name in names])
    failures, small = [], []
    for name in names:
        rows, value = metrics[f"{SLICE}{name}{ROWS}"], metrics[f"{SLICE}{name}_{gate.metric}"]
        if rows < gate.min_slice_rows:
            small.append(f"{name} ({rows:.0f} rows)")
        elif value < gate.slice_floor:
            failures.append(
                f"slice {name}: {gate.metric} {value:.4f} < floor {gate.slice_floor:.4f} "
                f"({rows:.0f} rows)"
            )
    note = f", every slice of at least {gate.min_slice_rows} rows >= floor {gate.slice_floor:g}"
    if small:
        note += f" (too small to gate: {', '.join(small)})"
    return failures, note


def decide(gate: Gate, metrics: dict[str, float]) -> Decision:
    """Pass when ``metric >= min_value`` and, if asked, ``metric >= baseline_<metric>``.

    Every ``also_not_below_baseline`` metric must also be at least its baseline value; for
    each comparator in ``interval_against`` (both with ``significant``) the low end of the
    paired interval of metric minus comparator must exceed ``+margin`` (``require: better``)
    or ``-margin`` (``not_worse``); with ``slice_floor`` no slice of at least
    ``min_slice_rows`` rows may fall below it.
    """
    key, baseline_key = gate.metric, f"baseline_{gate.metric}"
    also = [(name, f"baseline_{name}") for name in gate.also_not_below_baseline]
    champion = _champion_scored(gate, metrics)
    comparators = interval_comparators(gate, champion)
    intervals = [f"{key}{DIFFERENCES[side]}_ci_low" for side in comparators]
    _require(metrics, [key, baseline_key, *(k for pair in also for k in pair), *intervals])
    if comparators:
        _check_level(gate, metrics)
    value, baseline = metrics[key], metrics[baseline_key]
    failures = []
    if value < gate.min_value:
        failures.append(f"{key} {value:.4f} < threshold {gate.min_value:.4f}")
    if gate.not_below_baseline and value < baseline:
        failures.append(f"{key} {value:.4f} < baseline {baseline:.4f}")
    if champion and value <= metrics[f"champion_{key}"]:
        failures.append(f"{key} {value:.4f} <= champion {metrics[f'champion_{key}']:.4f}")
    failures += [
        why for side in comparators if (why := _interval_failure(gate, metrics, side)) is not None
    ]
    for name, base_name in also:
        if metrics[name] < metrics[base_name]:
            failures.append(f"{name} {metrics[name]:.4f} < baseline {metrics[base_name]:.4f}")
    slice_failures, slice_note = _slice_floor(gate, metrics)
    failures += slice_failures
    scored = ["baseline", "champion"] if champion else ["baseline"]
    comparisons = tuple(
        c for side in scored if (c := Comparison.read(metrics, key, side)) is not None
    )
    reason = "; ".join(failures) or (
        f"{key} {value:.4f} >= threshold {gate.min_value:.4f}"
        + (f" and >= baseline {baseline:.4f}" if gate.not_below_baseline else "")
        + "".join(_interval_success(gate, metrics, side) for side in comparators)
        + (f", above champion {metrics[f'champion_{key}']:.4f}" if champion else "")
        + slice_note
    )
    if comparisons:
        reason += "; " + "; ".join(c.text() for c in comparisons)
    return Decision(not failures, key, value, baseline, gate.min_value, reason, comparisons)
