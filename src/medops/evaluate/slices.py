"""Metrics per slice of the held-out rows, with bootstrap intervals, by fairlearn's MetricFrame.

A model can be good on average and poor for one group of notes. Each slice attribute (the
note's language, or a carried non-PHI field) splits the rows; MetricFrame scores every group
and bootstraps the whole test set, so a group's size varies between resamples as it would
between test sets. Its metric functions receive row indices, not labels: each side's
:class:`RowScores` re-scores those rows, so candidate, baseline and their difference come
from the same resampled rows (paired). Groups under ``min_rows`` are flagged ``small``,
never dropped. Group values become MLflow metric names, so they are sanitised.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from fairlearn.metrics import MetricFrame

from medops.deid.language import guess_language
from medops.evaluate.intervals import DIFFERENCES, RowScores, check_options

MISSING = "unknown"  # a row without the sliced field
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def slice_values(rows: Sequence[Mapping[str, Any]], name: str, language: str) -> list[str]:
    """Each row's group: ``language`` as prepare assigned it (``deid.language``, or guessed
    from the de-identified note when ``auto``), else the row's carried field ``name``, else
    its context feature ``name`` as of the note (age band, sex: ``features:``)."""
    if name == "language":
        return [guess_language(str(r["text"])) if language == "auto" else language for r in rows]
    return [
        str(r.get("fields", {}).get(name) or (r.get("context") or {}).get(name) or MISSING)
        for r in rows
    ]


def metric_safe(values: Sequence[str]) -> dict[str, str]:
    """Each distinct group value as MLflow accepts it in a metric name (letters, digits,
    ``_.-``); values that would collide get ``_2``, ``_3``... in sorted order."""
    keys: dict[str, str] = {}
    for value in sorted(set(values)):
        base = _UNSAFE.sub("_", value).strip("_") or MISSING
        key, n = base, 1
        while key in keys.values():
            n += 1
            key = f"{base}_{n}"
        keys[value] = key
    return keys


def _functions(
    sides: Mapping[str, RowScores], names: Sequence[str]
) -> dict[str, Callable[[np.ndarray, np.ndarray], float]]:
    """The candidate's ``names``, and ``{name}{suffix}``: candidate minus each comparator on
    the same rows. Each takes the group's (resampled) row indices as fairlearn's ``y_true``.

    Comparators get no interval of their own: every function costs MetricFrame a pass per
    group and resample, and the gate reads the candidate and the differences.
    """
    model = sides["model"]

    def value(name: str) -> Callable[[np.ndarray, np.ndarray], float]:
        return lambda rows, _: model.on(rows)[name]

    def difference(other: RowScores, name: str) -> Callable[[np.ndarray, np.ndarray], float]:
        return lambda rows, _: model.on(rows)[name] - other.on(rows)[name]

    functions = {name: value(name) for name in names}
    for label, suffix in DIFFERENCES.items():
        if label in sides:
            functions.update({f"{n}{suffix}": difference(sides[label], n) for n in names})
    return functions


def slice_metrics(
    sides: Mapping[str, RowScores],
    groups: Mapping[str, Sequence[str]],
    names: Sequence[str],
    *,
    resamples: int,
    seed: int,
    level: float,
    min_rows: int,
) -> dict[str, dict[str, dict[str, Any]]]:
    """attribute -> group -> ``{"rows", "small", <metric>: {"value", "ci_low", "ci_high"}}``.

    Metrics are the candidate's ``names`` and the paired differences (``macro_f1_diff``);
    group keys are :func:`metric_safe`'s.
    """
    check_options(resamples, level)
    functions = _functions(sides, names)
    indices = np.arange(sides["model"].rows)
    tail = (1.0 - level) / 2.0
    result: dict[str, dict[str, dict[str, Any]]] = {}
    for attribute, values in groups.items():
        keys = metric_safe(values)
        safe = [keys[v] for v in values]
        sizes = Counter(safe)
        frame = MetricFrame(
            metrics=functions,
            y_true=indices,
            y_pred=indices,
            sensitive_features=np.asarray(safe),
            n_boot=resamples,
            ci_quantiles=[tail, 1.0 - tail],
            random_state=seed,
        )
        low, high = frame.by_group_ci
        result[attribute] = {
            str(group): {
                "rows": int(sizes[group]),
                "small": bool(sizes[group] < min_rows),
                **{
                    name: {
                        "value": float(frame.by_group.loc[group, name]),
                        "ci_low": float(low.loc[group, name]),
                        "ci_high": float(high.loc[group, name]),
                    }
                    for name in functions
                },
            }
            for group in frame.by_group.index
        }
    return result


def gate_metrics(slices: Mapping[str, Mapping[str, Mapping[str, Any]]], metric: str) -> dict:
    """The flat numbers a gate on slices reads: ``slice_<attribute>_<group>_<metric>`` with
    its interval, and ``slice_<attribute>_<group>_rows``."""
    flat: dict[str, float] = {}
    for attribute, groups in slices.items():
        for group, scores in groups.items():
            stem = f"slice_{attribute}_{group}"
            flat[f"{stem}_rows"] = float(scores["rows"])
            flat[f"{stem}_{metric}"] = scores[metric]["value"]
            flat[f"{stem}_{metric}_ci_low"] = scores[metric]["ci_low"]
            flat[f"{stem}_{metric}_ci_high"] = scores[metric]["ci_high"]
    return flat
