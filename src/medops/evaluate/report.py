"""Human-readable evaluation: a confusion-matrix PNG and a one-page HTML report.

Where the evaluate stage computed intervals, every number carries its interval and each
comparison with the baseline its worded verdict; slices too small to trust are flagged.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib

from medops.evaluate.verdict import Comparison, level_of

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def confusion_png(matrix: list[list[int]], classes: list[str], path: Path, title: str) -> Path:
    size = max(5.0, 0.7 * len(classes) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    peak = max((max(row) for row in matrix), default=0)
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            color = "white" if value > peak / 2 else "black"
            ax.text(j, i, str(value), ha="center", va="center", color=color)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _table(rows: list[list[str]], header: list[str]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _with_ci(flat: Mapping[str, float], key: str, value: float) -> str:
    low, high = flat.get(f"{key}_ci_low"), flat.get(f"{key}_ci_high")
    return f"{value:.4f}" if low is None or high is None else f"{value:.4f} [{low:.4f}, {high:.4f}]"


def _summary(model: dict[str, Any], baseline: dict[str, Any], flat: Mapping[str, float]) -> str:
    """Candidate and baseline per metric, with intervals and the paired verdict where known."""
    rows = []
    for key in sorted(model["summary"]):
        comparison = Comparison.read(flat, key, "baseline")
        rows.append(
            [
                key,
                _with_ci(flat, key, model["summary"][key]),
                _with_ci(flat, f"baseline_{key}", baseline["summary"][key]),
                comparison.text().partition(": ")[2] if comparison else "",
            ]
        )
    return _table(rows, ["metric", "model", "baseline", "vs baseline (paired)"])


def slices_html(slices: Mapping[str, Mapping[str, Mapping[str, Any]]], level: float) -> str:
    """One row per slice: its rows, a SMALL flag, each metric with its interval."""
    if not slices:
        return ""
    names = sorted({n for g in slices.values() for s in g.values() for n in s} - {"rows", "small"})
    rows = [
        [
            f"{attribute}={group}",
            str(scores["rows"]) + (" (SMALL: do not rely on it)" if scores["small"] else ""),
            *(
                f"{scores[n]['value']:.4f} [{scores[n]['ci_low']:.4f}, {scores[n]['ci_high']:.4f}]"
                for n in names
            ),
        ]
        for attribute, groups in slices.items()
        for group, scores in groups.items()
    ]
    note = (
        f"<p>{level * 100:g}% bootstrap intervals (fairlearn MetricFrame); a difference is "
        "the model minus the baseline (or, in a <code>_vs_champion_diff</code> column, minus "
        "the current champion) on the same rows.</p>"
    )
    return f"<h2>Slices</h2>{note}{_table(rows, ['slice', 'rows', *names])}"


def html_report(
    title: str,
    model: dict[str, Any],
    baseline: dict[str, Any],
    png_name: str,
    path: Path,
    extra_html: str = "",
    flat: Mapping[str, float] | None = None,
    slices: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
) -> Path:
    """Summary vs baseline, slices, per class, confusion (when ``png_name``), ``extra_html``.

    ``flat`` holds the intervals (``*_ci_low``...) as the manifest does. No record text:
    ids, labels and model answers only.
    """
    flat = flat or {}
    summary = _summary(model, baseline, flat)
    if any(key.endswith("_ci_low") for key in flat):
        summary = (
            f"<p>{level_of(flat) * 100:g}% bootstrap intervals in brackets; the verdict "
            "compares model and baseline on the same resampled rows (paired).</p>" + summary
        )
    per_class = _table(
        [
            [
                name,
                f"{m['precision']:.3f}",
                f"{m['recall']:.3f}",
                f"{m['f1']:.3f}",
                str(m["support"]),
            ]
            for name, m in model["per_class"].items()
        ],
        ["class", "precision", "recall", "F1", "support"],
    )
    page = (
        f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:4px 10px;"
        "border-bottom:1px solid #ddd;text-align:left}</style>"
        f"<h1>{html.escape(title)}</h1><h2>Held-out test set</h2>{summary}"
        f"{slices_html(slices or {}, level_of(flat))}<h2>Per class</h2>{per_class}"
    )
    if png_name:
        page += f"<h2>Confusion matrix</h2><img src='{html.escape(png_name)}' alt='confusion'>"
    page += extra_html
    path.write_text(page, encoding="utf-8")
    return path
