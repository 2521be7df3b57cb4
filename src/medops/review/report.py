"""``medops review report``: acceptance over time per version, errors per field, agreement.

Read from the feedback store, so every round ever pulled counts; one self-contained HTML
page with its plots inlined (ids, counts and rates only, no text).
"""

from __future__ import annotations

import base64
import html
import io
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

from medops.review.pull import agreement


def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


def _acceptance_over_time(rows: list[dict[str, Any]]) -> str:
    """Share of reviews accepted as answered, per model version, per review day."""
    by: dict[str, dict[str, list[bool]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        day = (row["reviewed_at"] or row["pulled_at"]).date().isoformat()
        by[row["model_uri"]][day].append(row["verdict"] == "accept")
    figure, axes = plt.subplots(figsize=(7, 3.2))
    for version, days in sorted(by.items()):
        xs = sorted(days)
        axes.plot(xs, [sum(days[d]) / len(days[d]) for d in xs], marker="o", label=version)
    axes.set(ylim=(0, 1.05), ylabel="accepted as answered", title="Acceptance per version")
    axes.legend(fontsize=8)
    return _png(figure)


def _errors_per_field(rows: list[dict[str, Any]]) -> str:
    """Reviews in which a field's value was changed, per field and version."""
    versions = sorted({r["model_uri"] for r in rows})
    fields = sorted({name for r in rows for name in r["fields"]})
    figure, axes = plt.subplots(figsize=(7, 3.2))
    width = 0.8 / max(len(versions), 1)
    for i, version in enumerate(versions):
        mine = [r for r in rows if r["model_uri"] == version]
        counts = [
            sum(not r["fields"][f]["accepted"] for r in mine if f in r["fields"]) for f in fields
        ]
        axes.bar([j + i * width for j in range(len(fields))], counts, width, label=version)
    axes.set_xticks([j + width * (len(versions) - 1) / 2 for j in range(len(fields))], fields)
    axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set(ylabel="reviews with a correction", title="Errors per field")
    axes.legend(fontsize=8)
    return _png(figure)


def _agreement(rows: list[dict[str, Any]]) -> tuple[str | None, dict[str, dict[str, Any]]]:
    """Verdict agreement and Cohen's kappa per version, over items reviewed twice."""
    per_version = {}
    for version in sorted({r["model_uri"] for r in rows}):
        mine = [
            {"id": r["item_id"], "verdict": r["verdict"], "ls_annotation_id": r["ls_annotation_id"]}
            for r in rows
            if r["model_uri"] == version
        ]
        per_version[version] = agreement(mine)
    names = [v for v, a in per_version.items() if a["items_reviewed_twice"]]
    if not names:
        return None, per_version
    figure, axes = plt.subplots(figsize=(7, 3.2))
    axes.bar(names, [per_version[v]["verdict_agreement"] for v in names])
    title = "Reviewer agreement (items reviewed twice)"
    axes.set(ylim=(0, 1.05), ylabel="same verdict", title=title)
    return _png(figure), per_version


def _rate(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def write_report(project: str, rows: list[dict[str, Any]], path: Path) -> Path:
    if not rows:
        body = "<p>No reviews pulled yet: run <code>medops review pull</code> first.</p>"
    else:
        plot, per_version = _agreement(rows)
        table = "".join(
            f"<tr><td>{html.escape(v)}</td><td>{a['items_reviewed_twice']}</td>"
            f"<td>{_rate(a.get('verdict_agreement'))}</td>"
            f"<td>{_rate(a.get('verdict_kappa'))}</td></tr>"
            for v, a in per_version.items()
        )
        images = [_acceptance_over_time(rows), _errors_per_field(rows), *([plot] if plot else [])]
        reviewers = len({r["reviewer"] for r in rows})
        body = (
            f"<p>{len(rows)} reviews of {len({r['item_id'] for r in rows})} items by "
            f"{reviewers} reviewer{'s' if reviewers != 1 else ''}.</p>"
            + "".join(f"<img alt='plot' src='data:image/png;base64,{i}'/>" for i in images)
            + "<table><tr><th>version</th><th>items reviewed twice</th><th>agreement</th>"
            f"<th>Cohen's kappa</th></tr>{table}</table>"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f"<!doctype html><meta charset='utf-8'><title>{html.escape(project)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}img{display:block;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:4px 8px}table{border-collapse:collapse}</style>"
        f"<h1>Clinician review: {html.escape(project)}</h1>{body}",
        encoding="utf-8",
    )
    return path
