"""The model card: what a registered version is, what it was measured on, what it cannot promise.

Written by the register stage for every version (Markdown and a self-contained HTML page)
and logged to the version's run under ``model_card/``. Everything in it comes from the
stage results (``Prepared``, ``Trained``, ``Evaluated``), the recipe and the registration:
counts, hashes, metric values and the gate's wording, never a record's text. An interval
is shown only where the evaluate stage computed one; a number without one says so.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medops.evaluate.intervals import CI_LEVEL
from medops.evaluate.verdict import level_of
from medops.recipe import Recipe
from medops.registry.gate import ROWS, SLICE, Decision, interval_comparators, slice_names
from medops.results import Evaluated, Prepared, Trained

CARD_MD, CARD_HTML = "model_card.md", "model_card.html"
ARTIFACT_PATH = "model_card"
DATASET_CARD = "DATASET_CARD.md"  # what prepare writes beside the splits (medops.data.card)
DEFAULT_INTENDED_USE = "decision support reviewed by clinicians; not for autonomous diagnosis"
SMALL_TEST = 100  # below this many held-out rows the card flags the numbers as fragile
NO_CI = "no CI computed"
# other models an evaluate stage scores on the same rows, by metric prefix
_COMPARATORS = {
    "baseline_": "baseline",
    "fewshot_": "few-shot base",
    "champion_": "champion",
    "text_only_": "text only (no context features)",
}
_DIFFERENCES = {
    "_diff": "minus baseline",
    "_vs_champion_diff": "minus champion",
    "_vs_text_only_diff": "minus text only",
}
_CI = ("_ci_low", "_ci_high")
_SPLITS = ("rows_in", "rows_kept", "rows_quarantined", "train", "validation", "test")


@dataclass(frozen=True)
class Registration:
    """What the register stage knows about the version beyond the stage results."""

    model_name: str
    version: str
    mlflow_run_id: str
    git_commit: str
    decision: Decision
    approval: str  # in words, as of registration
    gate_audit_hash: str | None = None


# A card is sections of blocks: ("p", text) | ("ul", [text]) | ("table", (header, rows)).
Block = tuple[str, Any]


@dataclass(frozen=True)
class Section:
    title: str
    blocks: list[Block]


def _number(value: float) -> str:
    return f"{value:.4f}" if math.isfinite(value) else str(value)


def _with_ci(metrics: dict[str, float], key: str) -> str:
    if key not in metrics:
        return "not reported"
    low, high = (metrics.get(f"{key}{suffix}") for suffix in _CI)
    if low is None or high is None:
        return f"{_number(metrics[key])} ({NO_CI})"
    return f"{_number(metrics[key])} [{_number(low)}, {_number(high)}]"


def _is_primary(name: str) -> bool:
    """A metric of the candidate itself, not a comparator's, an interval, a difference or a
    slice's."""
    return not (
        name.startswith((*_COMPARATORS, SLICE))
        or name.endswith(_CI)
        or name.endswith(tuple(_DIFFERENCES))
        or name in ("champion_exists", CI_LEVEL)
    )


def quantitative(metrics: dict[str, float]) -> tuple[list[Block], set[str]]:
    """One row per metric of the candidate: its value, each comparator's, each paired
    difference, with the interval where one was computed. Returns the blocks and the metric
    keys they show, so nothing the evaluate stage reported is left out unsaid."""
    primary = sorted(name for name in metrics if _is_primary(name))
    comparators = [
        (prefix, title)
        for prefix, title in _COMPARATORS.items()
        if any(f"{prefix}{name}" in metrics for name in primary)
    ]
    differences = [
        (suffix, title)
        for suffix, title in _DIFFERENCES.items()
        if any(f"{name}{suffix}" in metrics for name in primary)
    ]
    header = (
        "metric",
        "this version",
        *(title for _, title in comparators),
        *(f"difference ({title}, paired)" for _, title in differences),
    )
    rows = [
        (
            name,
            _with_ci(metrics, name),
            *(_with_ci(metrics, f"{prefix}{name}") for prefix, _ in comparators),
            *(_with_ci(metrics, f"{name}{suffix}") for suffix, _ in differences),
        )
        for name in primary
    ]
    shown = {
        f"{stem}{ci}"
        for name in primary
        for stem in (
            name,
            *(f"{prefix}{name}" for prefix, _ in comparators),
            *(f"{name}{suffix}" for suffix, _ in differences),
        )
        for ci in ("", *_CI)
    }
    blocks: list[Block] = [
        (
            "p",
            f"Measured by the evaluate stage on the held-out test split; {_level(metrics)} "
            f"intervals in brackets where the evaluate stage computed them (bootstrap), "
            f"`{NO_CI}` where it did not: such a number is a point estimate only.",
        ),
        ("table", (header, rows)),
    ]
    if CI_LEVEL in metrics:
        shown.add(CI_LEVEL)
    if "champion_exists" in metrics:
        scored = "yes" if metrics["champion_exists"] else "no (no version held the alias)"
        blocks.append(("p", f"Champion scored on the same rows in this run: {scored}."))
        shown.add("champion_exists")
    return blocks, shown


def _level(metrics: dict[str, float]) -> str:
    return f"{level_of(metrics) * 100:g}%"


def slices(recipe: Recipe, metrics: dict[str, float]) -> tuple[list[Block], set[str]]:
    """The gate metric per slice with its interval; slices under ``gate.min_slice_rows``
    are flagged, never left out. Returns the blocks and the metric keys they show."""
    names = slice_names(metrics)
    if not names:
        return [], set()
    metric, smallest = recipe.gate.metric, recipe.gate.min_slice_rows
    rows = [
        (
            name,
            f"{metrics[f'{SLICE}{name}{ROWS}']:.0f}"
            + (" (SMALL)" if metrics[f"{SLICE}{name}{ROWS}"] < smallest else ""),
            _with_ci(metrics, f"{SLICE}{name}_{metric}"),
        )
        for name in names
    ]
    shown = {
        f"{SLICE}{name}{suffix}"
        for name in names
        for suffix in (ROWS, f"_{metric}", *(f"_{metric}{ci}" for ci in _CI))
    }
    text = (
        f"`{metric}` per slice of the held-out rows ({_level(metrics)} bootstrap intervals, "
        f"fairlearn MetricFrame). SMALL: fewer than {smallest} rows (`gate.min_slice_rows`), "
        "too few to rely on; other metrics per slice are in the evaluation's metrics.json."
    )
    return [("p", text), ("table", (("slice", "rows", metric), rows))], shown


def _other_metrics(metrics: dict[str, float], shown: set[str]) -> list[Block]:
    rest = sorted(set(metrics) - shown)
    if not rest:
        return []
    rows = [(name, _number(metrics[name])) for name in rest]
    return [
        ("p", "Other values the evaluate stage reported:"),
        ("table", (("name", "value"), rows)),
    ]


def _test_rows(prepared: Prepared, evaluated: Evaluated) -> int | None:
    counts = evaluated.counts
    scored = counts.get("test_scored", counts.get("test", prepared.counts.get("test")))
    return int(scored) if scored is not None else None


def _details(recipe: Recipe, prepared: Prepared, trained: Trained, reg: Registration) -> Section:
    rows = [
        ("name", reg.model_name),
        ("version", reg.version),
        ("task", recipe.task),
        ("base model", str(trained.extra.get("base_model", recipe.model.base))),
        ("method", str(trained.extra.get("method", recipe.train.method))),
        ("recipe", recipe.name),
        ("recipe hash", recipe.content_hash()),
        ("git commit", reg.git_commit),
        ("dataset hash", prepared.dataset_hash),
        ("MLflow run", reg.mlflow_run_id),
    ]
    return Section("Model details", [("table", (("", ""), rows))])


def _intended_use(recipe: Recipe) -> Section:
    stated = recipe.registry.intended_use
    source = "from the recipe (registry.intended_use)" if stated else "medops' default"
    return Section(
        "Intended use",
        [
            ("p", f"{stated or DEFAULT_INTENDED_USE} ({source})."),
            (
                "p",
                "Out of scope: any use without a clinician reviewing the output, and data "
                "unlike the training data described below.",
            ),
        ],
    )


def _source_line(source: Any) -> str:
    """A source as the card lists it; only table sources name an archive member."""
    member = getattr(source, "member", None)
    return f"`{source.uri}`" + (f" ({member})" if member else "") + f": {source.role}"


def _data(recipe: Recipe, prepared: Prepared, evaluated: Evaluated) -> Section:
    counts = prepared.counts
    rows = [(name.replace("_", " "), counts[name]) for name in _SPLITS if name in counts]
    scored = _test_rows(prepared, evaluated)
    if scored is not None:
        rows.append(("held-out rows scored by evaluate", scored))
    deid = recipe.deid
    policy = [f"de-identification policy: `{deid.policy}`"]
    if deid.no_phi_reason:
        policy.append(f"no patient information, as the recipe states: {deid.no_phi_reason}")
    if "deid_rows_with_phi" in counts:
        policy.append(
            f"rows in which PHI was detected and replaced: {counts['deid_rows_with_phi']}"
        )
    card = prepared.directory / DATASET_CARD
    pointer = (
        f"Dataset card: `{card}` (also logged with this card as `{ARTIFACT_PATH}/{DATASET_CARD}`)."
        if card.is_file()
        else f"Dataset card: not found in the prepared directory `{prepared.directory}`."
    )
    sources = [_source_line(source) for source in recipe.data.sources]
    return Section(
        "Training and evaluation data",
        [
            ("p", "Counts from the prepare stage's manifest (test rows are never trained on):"),
            ("table", (("", "rows"), rows)),
            ("p", "Sources:"),
            ("ul", sources),
            ("p", "De-identification (the prepare stage, before any training):"),
            ("ul", policy),
            ("p", pointer),
        ],
    )


def _gate(recipe: Recipe, decision: Decision) -> Section:
    gate = recipe.gate
    verdict = "Passed" if decision.passed else "Refused"
    bound = f"{'+' if gate.require == 'better' else '-'}{gate.margin:g}"
    against = interval_comparators(gate, gate.against_champion)
    rules = [
        f"`{gate.metric}` at least {gate.min_value}",
        f"not below the baseline: {'yes' if gate.not_below_baseline else 'no'}",
        f"also not below the baseline: {', '.join(gate.also_not_below_baseline) or 'none'}",
        f"paired {gate.confidence * 100:g}% interval of the difference above {bound} "
        f"(require {gate.require}, margin {gate.margin:g}) against: "
        f"{', '.join(against) or 'none'}",
        f"must beat the champion: {'yes' if gate.against_champion else 'no'}",
        f"floor for every slice of at least {gate.min_slice_rows} rows: "
        f"{'none' if gate.slice_floor is None else f'{gate.slice_floor:g}'}",
    ]
    blocks: list[Block] = [("p", f"{verdict}: {decision.reason}.")]
    if decision.comparisons:
        blocks += [("p", "Compared on the same rows:"), ("ul", decision.verdicts)]
    return Section("Gate decision", [*blocks, ("p", "The gate's rules:"), ("ul", rules)])


def _privacy(audit: dict[str, Any]) -> Section:
    """The train stage's privacy audit (``medops.privacy.audit``): figures, never a canary."""
    if audit["status"] == "disabled":
        text = "Not run: the recipe sets `privacy_audit.enabled: false`; approval is not blocked."
        return Section("Privacy audit", [("p", text)])
    rows = [
        (
            c["canary"],
            c["copies"],
            f"{c['exposure_bits']:.1f}",
            f"{c['rank_exposure_bits']:.1f} (of at most {math.log2(c['references'] + 1):.1f})",
        )
        for c in audit["canaries"]
    ]
    found = audit["regurgitation"]
    probes = [
        f"generations probed: {found['probes']} (training prompts without their answer, and "
        "every canary's question)",
        f"with an identifier of the training set not in their prompt: "
        f"{found['generations_with_identifier']} (of {found['identifiers_in_training']} such "
        "identifiers, canaries included)",
        f"with a verbatim overlap with a training text: {found['generations_with_overlap']}",
        f"canaries emitted: {found['canaries_emitted']}",
    ]
    return Section(
        "Privacy audit",
        [
            ("p", f"{audit['reason']}."),
            (
                "p",
                "Canaries: obviously fake identifiers planted in this run's training rows only. "
                "Exposure in bits (Carlini et al. 2019): how much likelier the model finds the "
                "canary than unplanted candidates of its format, from a skew-normal fit of "
                "theirs; the rank among the candidates scored is shown beside it.",
            ),
            ("table", (("canary", "copies", "exposure (bits)", "rank exposure (bits)"), rows)),
            ("p", "Regurgitation probe:"),
            ("ul", probes),
        ],
    )


def _approval(reg: Registration) -> Section:
    blocks: list[Block] = [
        ("p", f"At registration: {reg.approval}."),
        (
            "p",
            "This card is written once, at registration; the current decision is the "
            "version's `approval` tag and the audit log (`medops audit`).",
        ),
    ]
    if reg.gate_audit_hash:
        blocks.append(("p", f"Gate decision's audit entry hash: `{reg.gate_audit_hash}`."))
    return Section("Approval", blocks)


def _limitations(recipe: Recipe, prepared: Prepared, evaluated: Evaluated) -> Section:
    scored = _test_rows(prepared, evaluated)
    if scored is None:
        size = "The held-out size was not recorded: the numbers above cannot be weighed."
    else:
        spread = 0.98 / math.sqrt(scored) if scored else float("inf")
        size = (
            f"Held out: {scored} rows. A rate measured on that many rows is uncertain by up to "
            f"about ±{spread:.2f} (95%)."
        )
        if scored < SMALL_TEST:
            size = f"SMALL TEST SET: {size} Fewer than {SMALL_TEST} rows: do not rely on it."
    if recipe.deid.policy == "none":
        phi = (
            "The data was not de-identified: the recipe declares it free of patient "
            f"information ({recipe.deid.no_phi_reason})."
        )
    else:
        phi = (
            f"Training and evaluation text was de-identified (policy `{recipe.deid.policy}`) "
            "before training; automatic de-identification misses some PHI (measured quality "
            "in the dataset card), so the model may have seen, and could reproduce, residual "
            "identifiers."
        )
    serve = recipe.serve
    phi += (
        f" Serving as this recipe configures it: input de-identified "
        f"{'yes' if serve.deidentify_input else 'NO'}, generated output redacted "
        f"{'yes' if serve.redact_output else 'NO'}."
    )
    measured = slice_names(evaluated.metrics)
    subgroups = (
        f"Subgroups measured: {', '.join(measured)} (see the slices above); performance by "
        "age, sex, site or note type was not measured."
        if measured
        else "No subgroup analysis: performance by age, sex, site or note type was not measured."
    )
    items = [
        phi,
        size,
        subgroups,
        "Labels and references come from the sources and are not clinically verified.",
        "Not validated prospectively; shift to other sites or writing styles is not measured.",
    ]
    return Section("Limitations and ethical considerations", [("ul", items)])


def model_card(
    recipe: Recipe,
    prepared: Prepared,
    trained: Trained,
    evaluated: Evaluated,
    registration: Registration,
) -> list[Section]:
    table, shown = quantitative(evaluated.metrics)
    by_slice, shown_slices = slices(recipe, evaluated.metrics)
    rest = _other_metrics(evaluated.metrics, shown | shown_slices)
    return [
        _details(recipe, prepared, trained, registration),
        _intended_use(recipe),
        _data(recipe, prepared, evaluated),
        Section("Quantitative analysis", table + by_slice + rest),
        *([_privacy(trained.extra["privacy_audit"])] if "privacy_audit" in trained.extra else []),
        _gate(recipe, registration.decision),
        _approval(registration),
        _limitations(recipe, prepared, evaluated),
    ]


def title(registration: Registration) -> str:
    return f"Model card: {registration.model_name} version {registration.version}"


def _md_cell(value: Any) -> str:
    return " ".join(str(value).split()).replace("|", "\\|")


def to_markdown(heading: str, sections: Iterable[Section]) -> str:
    lines = [f"# {heading}"]
    for section in sections:
        lines += ["", f"## {section.title}"]
        for kind, content in section.blocks:
            lines.append("")
            if kind == "p":
                lines.append(content)
            elif kind == "ul":
                lines += [f"- {item}" for item in content]
            else:
                header, rows = content
                lines.append("| " + " | ".join(_md_cell(h) for h in header) + " |")
                lines.append("|" + "---|" * len(header))
                lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _inline(text: Any) -> str:
    """Escaped text; `code` spans (the Markdown's) as <code>, each piece escaped alone."""
    pieces = re.split(r"`", str(text))
    if len(pieces) % 2 == 0:  # an unpaired backtick: show it as it is
        return html.escape(str(text))
    return "".join(
        f"<code>{html.escape(piece)}</code>" if i % 2 else html.escape(piece)
        for i, piece in enumerate(pieces)
    )


_STYLE = (
    "body{font-family:sans-serif;margin:2em;max-width:60em}td,th{border:1px solid #ccc;"
    "padding:4px 8px;text-align:left;vertical-align:top}table{border-collapse:collapse}"
    "code{background:#f4f4f4}"
)


def to_html(heading: str, sections: Iterable[Section]) -> str:
    """A page with no external asset (no script, font or stylesheet fetched)."""
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(heading)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(heading)}</h1>",
    ]
    for section in sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        for kind, content in section.blocks:
            if kind == "p":
                parts.append(f"<p>{_inline(content)}</p>")
            elif kind == "ul":
                parts.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in content) + "</ul>")
            else:
                header, rows = content
                head = "".join(f"<th>{_inline(h)}</th>" for h in header)
                body = "".join(
                    "<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>"
                    for row in rows
                )
                parts.append(f"<table><tr>{head}</tr>{body}</table>")
    return "".join(parts) + "</body></html>\n"


def write_model_card(
    out_dir: Path,
    recipe: Recipe,
    prepared: Prepared,
    trained: Trained,
    evaluated: Evaluated,
    registration: Registration,
) -> dict[str, Path]:
    """Write both forms into ``out_dir``; returns name -> path of every file to log (the
    prepared dataset card too, so the version carries it)."""
    sections = model_card(recipe, prepared, trained, evaluated, registration)
    heading = title(registration)
    written = {CARD_MD: out_dir / CARD_MD, CARD_HTML: out_dir / CARD_HTML}
    written[CARD_MD].write_text(to_markdown(heading, sections), encoding="utf-8")
    written[CARD_HTML].write_text(to_html(heading, sections), encoding="utf-8")
    if (prepared.directory / DATASET_CARD).is_file():
        written[DATASET_CARD] = prepared.directory / DATASET_CARD
    return written
