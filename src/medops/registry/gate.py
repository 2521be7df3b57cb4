"""The promotion gate: a model version gets the serving alias only when this says so."""

from __future__ import annotations

from dataclasses import asdict, dataclass

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
    """Pass when ``metric >= min_value`` and, if asked, ``metric >= baseline_<metric>``."""
    key, baseline_key = gate.metric, f"baseline_{gate.metric}"
    for needed in (key, baseline_key):
        if needed not in metrics:
            raise KeyError(
                f"gate needs metric {needed!r}; the evaluate manifest has {sorted(metrics)}"
            )
    value, baseline = metrics[key], metrics[baseline_key]
    failures = []
    if value < gate.min_value:
        failures.append(f"{key} {value:.4f} < threshold {gate.min_value:.4f}")
    if gate.not_below_baseline and value < baseline:
        failures.append(f"{key} {value:.4f} < baseline {baseline:.4f}")
    reason = "; ".join(failures) or (
        f"{key} {value:.4f} >= threshold {gate.min_value:.4f}"
        + (f" and >= baseline {baseline:.4f}" if gate.not_below_baseline else "")
    )
    return Decision(not failures, key, value, baseline, gate.min_value, reason)
