"""Human-readable evaluation: a confusion-matrix PNG and a one-page HTML report."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import matplotlib

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


def html_report(
    title: str,
    model: dict[str, Any],
    baseline: dict[str, Any],
    png_name: str,
    path: Path,
    extra_html: str = "",
) -> Path:
    """Summary vs baseline, per class, confusion (when ``png_name``), then ``extra_html``.

    No record text: ids, labels and model answers only.
    """
    keys = sorted(model["summary"])
    summary = _table(
        [[k, f"{model['summary'][k]:.4f}", f"{baseline['summary'][k]:.4f}"] for k in keys],
        ["metric", "model", "baseline"],
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
        f"<h2>Per class</h2>{per_class}"
    )
    if png_name:
        page += f"<h2>Confusion matrix</h2><img src='{html.escape(png_name)}' alt='confusion'>"
    page += extra_html
    path.write_text(page, encoding="utf-8")
    return path
