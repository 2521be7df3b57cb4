"""The dataset card: what a prepared dataset holds, how it was made and what it cannot promise.

Built from the prepare manifest and the recipe only, so it never holds a record's text or
id: a reviewer can read it, and it can be shared, without seeing PHI. The measured
de-identification quality comes from ``medops/deid/measured_quality.json``, which
``bench/deid_recall.py`` writes and the wheel ships.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import medops.deid
from medops.data.clean import NEAR_DUPLICATE_JACCARD, SHINGLE_CHARS
from medops.data.ingest import source_name
from medops.data.split import SPLITS
from medops.deid.spans import CATEGORIES
from medops.manifest import Manifest
from medops.recipe import Recipe

CARD = "DATASET_CARD.md"
# the resolved recipe, written beside the data it made: erasure rebuilds the card from it
RECIPE = "recipe.json"
# written by bench/deid_recall.py and shipped in the wheel, so an installed medops has it
DEID_RECALL = Path(medops.deid.__file__).with_name("measured_quality.json")
# the labelled sets of bench/deid_recall.py, in the order the card lists them
_QUALITY_SETS = {
    "philter_i2b2": "philter-lite i2b2-style notes (English)",
    "medops_en": "medops synthetic notes (English)",
    "medops_fr": "medops synthetic notes (French)",
}
_OVERALL = ("gold", "precision", "recall")
_REASONS = {
    "missing_id": "the row has no id",
    "duplicate_id": "a second row with an id already read",
    "missing_text": "empty text",
    "missing_label": "empty label",
    "bad_json": "a line that is not a JSON object",
    "text_too_short": "text shorter than data.min_chars after cleaning",
    "text_too_long": "text longer than data.max_chars after cleaning",
    "too_many_tokens": "de-identified text longer than data.max_tokens tokens",
    "label_out_of_scope": "label not among the selected classes",
    "duplicate": "same text as a kept row (casefolded); test rows are kept first",
    "near_duplicate": (
        f"normalised text equal to a kept row's, or character {SHINGLE_CHARS}-gram Jaccard "
        f">= {NEAR_DUPLICATE_JACCARD} with one; a train row near a test row is dropped, "
        "test rows are never dropped as near-copies of each other"
    ),
}


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]


def _prefixed(counts: dict[str, int], prefix: str) -> list[tuple[str, int]]:
    return sorted((k[len(prefix) :], v) for k, v in counts.items() if k.startswith(prefix))


def _measured_quality(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _sources(data: dict[str, Any], recipe: Recipe) -> list[str]:
    rows = [
        (
            f"`{s.uri}`",
            s.member or "-",
            s.role,
            f"`{data['inputs'].get(source_name(s), {}).get('sha256', 'not recorded')}`",
        )
        for s in recipe.data.sources
    ]
    return ["## Sources", "", *_table(("uri", "member", "role", "sha256"), rows)]


def _counts(counts: dict[str, int]) -> list[str]:
    rows = [
        ("rows in", counts.get("rows_in", 0)),
        ("rows kept", counts.get("rows_kept", 0)),
        ("rows quarantined", counts.get("rows_quarantined", 0)),
        *((f"kept in {name}", counts.get(name, 0)) for name in SPLITS),
    ]
    erased = counts.get("rows_erased", 0)
    if erased:
        rows.append(("rows erased on request after preparation (GDPR Art. 17)", erased))
    # the de-duplication steps always run: show them even when they found nothing
    found = {"duplicate": 0, "near_duplicate": 0, **dict(_prefixed(counts, "quarantined_"))}
    reasons = [(reason, n, _REASONS.get(reason, "")) for reason, n in sorted(found.items())]
    return [
        "## Counts",
        "",
        *_table(("", "rows"), rows),
        "",
        "### Quarantine by reason",
        "",
        "`quarantine.jsonl` lists each quarantined row's id, source and reason (no text).",
        "",
        *_table(("reason", "rows", "meaning"), reasons),
    ]


def _labels(data: dict[str, Any]) -> list[str]:
    per_split = data["extra"].get("label_counts", {})
    labels = sorted({label for counts in per_split.values() for label in counts})
    if not labels:
        return ["## Labels", "", "No label distribution recorded."]
    rows = [
        (label, *(per_split.get(name, {}).get(label, 0) for name in SPLITS)) for label in labels
    ]
    return [
        "## Labels",
        "",
        "As given by the sources (after `data.label_map`), not clinically verified.",
        "",
        *_table(("label", *SPLITS), rows),
    ]


_POLICY = {
    "none": "not de-identified: the recipe declares the data free of patient information",
    "redact": "each detected span becomes its category tag, e.g. `[NAME]`, `[DATE]`",
    "pseudonymize": (
        "each detected span becomes a keyed surrogate (`Name-3f9a1c0b`, `[ID-…]`), dates are "
        "shifted by a per-patient number of days (intervals kept); the key is not stored here"
    ),
}


def _deid(counts: dict[str, int], recipe: Recipe) -> list[str]:
    deid = recipe.deid
    languages = ", ".join(f"{k} {v}" for k, v in _prefixed(counts, "deid_language_")) or "none"
    lines = [
        "## De-identification",
        "",
        f"- policy: `{deid.policy}` ({_POLICY[deid.policy]})",
        f"- engine: presidio with spaCy `{deid.spacy_model}` (English) / `{deid.spacy_model_fr}` "
        f"(French), medops recognizers and false-positive filters, score threshold "
        f"{deid.score_threshold}: the same path as `medops data deid`",
        f"- language: `{deid.language}`; rows per language: {languages}",
        f"- rows with at least one PHI span: {counts.get('deid_rows_with_phi', 0)}",
        f"- non-PHI vocabulary never redacted: {counts.get('deid_known_terms', 0)} terms "
        f"(recipe `keep_terms`, source columns {', '.join(deid.keep_terms_from) or 'none'}, "
        "and the class names)",
    ]
    if deid.policy == "pseudonymize":
        unparsed = counts.get("deid_dates_redacted_unparsed", 0)
        lines.append(f"- dates not shifted but redacted (form not parsed reliably): {unparsed}")
    lines += [
        "",
        "### Spans per category",
        "",
        *_table(("category", "spans"), [(c, counts.get(f"deid_{c}", 0)) for c in CATEGORIES]),
        "",
        "### Detections kept as non-PHI by a filter",
        "",
    ]
    dropped = _prefixed(counts, "deid_dropped_")
    return lines + (_table(("filter rule", "detections"), dropped) if dropped else ["None."])


def _quality(measured: dict[str, Any] | None) -> list[str]:
    lines = ["## Measured de-identification quality", ""]
    if measured is None:
        return [
            *lines,
            "Not measured: this installation has no `medops/deid/measured_quality.json`.",
        ]
    sets = [(key, title) for key, title in _QUALITY_SETS.items() if key in measured]
    tallies = {key: measured[key]["medops"]["covered"] for key, _ in sets}
    rows = [
        (title, measured[key]["notes"], *(tallies[key]["overall"][m] for m in _OVERALL))
        for key, title in sets
    ]
    recall_rows = [
        (category, *(_category_recall(tallies[key], category) for key, _ in sets))
        for category in CATEGORIES
    ]
    return [
        *lines,
        f"Measured by `bench/deid_recall.py` ({measured.get('medops', 'medops')}); scorer: "
        f"{measured.get('scorer', 'medops.deid.scoring.score')}. The detector measured there "
        "is the one that de-identified this dataset.",
        "",
        *_table(("labelled set", "notes", "gold spans", "precision", "recall"), rows),
        "",
        "Recall per category (gold spans in brackets):",
        "",
        *_table(("category", *(title for _, title in sets)), recall_rows),
        "",
        "Caveats:",
        "",
        *(f"- {title}: {measured[key]['caveat']}" for key, title in sets),
    ]


def _category_recall(tally: dict[str, Any], category: str) -> str:
    row = tally["per_category"].get(category, {})
    return f"{row['recall']} ({row['gold']})" if row.get("gold") else "–"


def _tokens(counts: dict[str, int], recipe: Recipe) -> list[str]:
    lines = ["## Token lengths", ""]
    if counts.get("tokens_unavailable") or "tokens_max" not in counts:
        return [*lines, f"Not measured: the tokenizer of `{recipe.model.base}` was not available."]
    over = recipe.overlong_handling()
    rows = [
        ("median", counts["tokens_p50"]),
        ("95th percentile", counts["tokens_p95"]),
        ("max", counts["tokens_max"]),
        (f"rows over model.max_length ({recipe.model.max_length})", counts["rows_over_max_length"]),
    ]
    return [
        *lines,
        f"De-identified texts under the tokenizer of `{recipe.model.base}`, special tokens "
        f"included. Rows over `model.max_length` are kept and {over}.",
        "",
        *_table(("", "tokens"), rows),
    ]


def _limitations(measured: dict[str, Any] | None) -> list[str]:
    philter = (measured or {}).get("philter_i2b2", {}).get("medops", {}).get("covered", {})
    recall = philter.get("overall", {}).get("recall")
    measured_recall = (
        f"measured recall {recall} on the philter-lite notes, which its rules were written "
        "against: expect lower on new text"
        if recall is not None
        else "its recall is not measured in this installation"
    )
    return [
        "## Known limitations",
        "",
        f"- Automatic de-identification is not perfect ({measured_recall}); PHI can remain in "
        "the text. Review before sharing the data beyond its approved use.",
        "- Drug names and other medical terms not in the non-PHI vocabulary may be redacted as "
        "names or places, and some non-PHI is redacted (precision above).",
        "- Labels come from the sources and are not clinically verified.",
        f"- Near-duplicates are found by character {SHINGLE_CHARS}-gram overlap "
        f"(Jaccard >= {NEAR_DUPLICATE_JACCARD}); paraphrases of one text are not detected.",
        "- The rows reflect who wrote them and where they were collected; no bias audit was run.",
    ]


def dataset_card(
    manifest: Manifest | dict[str, Any], recipe: Recipe, quality_path: Path = DEID_RECALL
) -> str:
    """Markdown describing the prepared dataset: counts, labels, de-identification, limits."""
    data = manifest.to_dict() if isinstance(manifest, Manifest) else manifest
    counts = data["counts"]
    measured = _measured_quality(quality_path)
    sections = [
        [
            f"# Dataset card: {recipe.name}",
            "",
            f"Prepared by `medops` (stage `{data['stage']}`), task `{recipe.task}`. "
            f"Dataset hash (train, validation, test files): `{data['extra'].get('dataset_hash')}`; "
            f"recipe hash: `{data['recipe_hash']}`.",
        ],
        _sources(data, recipe),
        _counts(counts),
        _labels(data),
        _deid(counts, recipe),
        _quality(measured),
        _tokens(counts, recipe),
        _limitations(measured),
    ]
    return "\n\n".join("\n".join(section) for section in sections) + "\n"
