"""The promotion gate: a model version gets the serving alias only when this says so."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from medops.errors import ConfigurationError
from medops.recipe import Gate


@dataclass(frozen=True)
class Decision:
    passed: bool
    metric: str
    value: float
    baseline: float
    threshold: float
    reason: str

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def decide(gate: Gate, metrics: dict[str, float]) -> Decision:
    """Pass when ``metric >= min_value`` and, if asked, ``metric >= baseline_<metric>``.

    Every ``also_not_below_baseline`` metric must also be at least its baseline value, and
    with ``significant`` the paired interval of the gain must lie above zero.
    """
    key, baseline_key = gate.metric, f"baseline_{gate.metric}"
    also = [(name, f"baseline_{name}") for name in gate.also_not_below_baseline]
    interval = [f"{key}_diff_ci_low"] if gate.significant else []
    for needed in (key, baseline_key, *(k for pair in also for k in pair), *interval):
        if needed not in metrics:
            raise ConfigurationError(
                f"gate needs metric {needed!r}; the evaluate manifest has {sorted(metrics)}"
            )
    value, baseline = metrics[key], metrics[baseline_key]
    failures = []
    if value < gate.min_value:
        failures.append(f"{key} {value:.4f} < threshold {gate.min_value:.4f}")
    if gate.not_below_baseline and value < baseline:
        failures.append(f"{key} {value:.4f} < baseline {baseline:.4f}")
    if interval and metrics[interval[0]] <= 0:
        failures.append(f"{interval[0]} {metrics[interval[0]]:.4f} <= 0 (gain within noise)")
    failures += _against_champion(gate, metrics)
    for name, base_name in also:
        if metrics[name] < metrics[base_name]:
            failures.append(f"{name} {metrics[name]:.4f} < baseline {metrics[base_name]:.4f}")
    reason = "; ".join(failures) or (
        f"{key} {value:.4f} >= threshold {gate.min_value:.4f}"
        + (f" and >= baseline {baseline:.4f}" if gate.not_below_baseline else "")
        + (f", gain interval above 0 ({metrics[interval[0]]:.4f})" if interval else "")
        + (
            f", above champion {metrics[f'champion_{key}']:.4f}"
            if gate.against_champion and metrics.get("champion_exists")
            else ""
        )
    )
    return Decision(not failures, key, value, baseline, gate.min_value, reason)


def _against_champion(gate: Gate, metrics: dict[str, float]) -> list[str]:
    """Why the candidate does not beat the champion scored in the same run (none: it does,
    or no version holds the alias yet)."""
    if not gate.against_champion:
        return []
    if "champion_exists" not in metrics:
        raise ConfigurationError(
            "gate.against_champion: the evaluate manifest has no champion_exists; this task's "
            "evaluate stage does not score the champion"
        )
    if not metrics["champion_exists"]:
        return []
    key, champion = gate.metric, metrics[f"champion_{gate.metric}"]
    failures = []
    if metrics[key] <= champion:
        failures.append(f"{key} {metrics[key]:.4f} <= champion {champion:.4f}")
    low = f"{key}_vs_champion_diff_ci_low"
    if gate.significant and metrics[low] <= 0:
        failures.append(f"{low} {metrics[low]:.4f} <= 0 (no gain over the champion beyond noise)")
    return failures
