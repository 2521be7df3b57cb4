"""``medops drift``: the report, as a table for the terminal, drift.json and drift.md.

It holds counts, shares, statistics and verdicts only: no input, answer or word from
either side, so it can go wherever monitoring output goes. The label shares name the
recipe's classes and fixed buckets, never an answer's free text.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from medops.monitor.drift import DRIFT, compare, overall
from medops.monitor.reference import GENERATIONS, Labels, load_reference
from medops.monitor.traffic import Recorded, current_side, recorded
from medops.recipe import Recipe

REPORT_JSON, REPORT_MD = "drift.json", "drift.md"
EXIT_DRIFT = 1  # `medops drift` exits 1 on drift: a failed Job, an alert


def drift_report(
    recipe: Recipe, prepared: Path, evaluated: Path | None, since: datetime | None
) -> dict[str, Any]:
    """Compare the recorded traffic since ``since`` with the run's training data."""
    reference, labels = load_reference(recipe, prepared, evaluated)
    chosen = recorded(recipe, since)
    findings = compare(
        reference, current_side(recipe, chosen.rows, labels), recipe.monitor.drift, recipe.seed
    )
    return {
        "recipe": recipe.name,
        "recipe_hash": recipe.content_hash(),
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "since": since.isoformat(timespec="seconds") if since else None,
        "overall": overall(findings),
        "reference": {
            "prepared": str(prepared),
            "evaluated": str(evaluated) if evaluated else None,
            "label_field": labels.field if labels else None,
        },
        "traffic": {"recorded": len(chosen.rows), "by_served_model": chosen.by_model},
        "settings": recipe.monitor.drift.model_dump(mode="json"),
        "statistics": [f.to_dict() for f in findings],
        "notes": _notes(recipe, chosen, labels, bool(reference.answers)),
    }


def _notes(recipe: Recipe, chosen: Recorded, labels: Labels | None, answers: bool) -> list[str]:
    """Why a statistic could not be judged, in words a reader can act on."""
    settings, notes = recipe.monitor.drift, []
    if not recipe.serve.review_queue.enabled:
        notes.append(
            "serve.review_queue.enabled is false in this recipe: the endpoint records no "
            "traffic (only generative endpoints record, and only with it on)"
        )
    if len(chosen.rows) < settings.min_rows:
        notes.append(
            f"{len(chosen.rows)} recorded exchanges, fewer than monitor.drift.min_rows "
            f"({settings.min_rows}): insufficient data, which is not a drift"
        )
    if not answers:
        notes.append(
            f"the run has no evaluated answers ({GENERATIONS}): the answer statistics are not "
            "available"
        )
    elif labels is None:
        notes.append("the answers have no label field: answer_category_psi is not available")
    return notes


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def table_lines(report: dict[str, Any]) -> list[str]:
    """The terminal table: one line per statistic, then the overall verdict."""
    head = f"{'statistic':<22}{'value':>8}{'chance':>8}{'p':>8}{'limit':>8}  verdict"
    lines = [
        f"drift of {report['recipe']}: {report['traffic']['recorded']} recorded exchanges"
        + (f" since {report['since']}" if report["since"] else ""),
        head,
    ]
    for s in report["statistics"]:
        lines.append(
            f"{s['statistic']:<22}{_number(s['value']):>8}{_number(s['expected']):>8}"
            f"{_number(s['p_value']):>8}{s['threshold']:>8.3f}  {s['verdict'].upper()}"
        )
    lines += [f"note: {note}" for note in report["notes"]]
    lines.append(f"overall: {report['overall'].upper()}")
    return lines


def _markdown(report: dict[str, Any]) -> str:
    rows = [
        f"| {s['statistic']} | {s['reference_rows']} | {s['current_rows']} | "
        f"{_number(s['value'])} | {_number(s['expected'])} | {_number(s['p_value'])} | "
        f"{s['threshold']:.3f} | {s['verdict']} |"
        for s in report["statistics"]
    ]
    shares: dict[str, dict[str, float]] = next(
        (s["shares"] for s in report["statistics"] if s["shares"]), {}
    )
    label = report["reference"]["label_field"]
    parts = [
        f"# Drift report: {report['recipe']}",
        "",
        f"**Overall: {report['overall']}** (generated {report['generated_at']}; traffic "
        f"{'since ' + report['since'] if report['since'] else 'unexpired'}: "
        f"{report['traffic']['recorded']} recorded exchanges)",
        "",
        "A statistic drifts when it exceeds its value by chance (the mean over "
        f"{report['settings']['permutations']} shuffles of the pooled rows) by more than its "
        f"threshold and its p-value is below {report['settings']['alpha']}.",
        "",
        "| statistic | reference rows | traffic rows | value | by chance | p | threshold "
        "| verdict |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
    ]
    if shares:
        parts += ["", f"Shares of the answers' `{label}`:", "", "| value | evaluated | traffic |"]
        parts.append("|---|---|---|")
        parts += [
            f"| {name} | {v['reference']:.3f} | {v['current']:.3f} |" for name, v in shares.items()
        ]
    if report["notes"]:
        parts += ["", "Notes:", "", *(f"- {note}" for note in report["notes"])]
    return "\n".join(parts) + "\n"


def write_report(report: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / REPORT_JSON, out_dir / REPORT_MD
    json_path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    md_path.write_text(_markdown(report), encoding="utf-8")
    return json_path, md_path


def exit_code(report: dict[str, Any]) -> int:
    return EXIT_DRIFT if report["overall"] == DRIFT else 0
