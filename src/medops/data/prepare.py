"""The prepare stage: ingest -> clean -> select classes -> dedupe (exact, then near) ->
de-identify -> split.

Writes ``train/validation/test.jsonl`` (de-identified text), ``quarantine.jsonl`` (ids and
reasons only, never text), ``labels.json`` and ``DATASET_CARD.md``. PHI never leaves this
stage: nothing here logs, raises or stores a record's raw text. Patient ids are never
written either: with ``MEDOPS_DEID_KEY`` set, a row carries a keyed hash of its patient id
(``patient_key``) so ``medops data forget`` can erase that patient later (docs/privacy.md).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from medops.data.card import CARD, RECIPE, dataset_card
from medops.data.clean import clean_records, dedupe, keep_classes, near_dedupe, select_classes
from medops.data.dataset import LABELS, dataset_hash
from medops.data.ingest import Quarantined, Record, ingest
from medops.data.split import SPLITS, leakage, split_rows
from medops.deid.filters import vocabulary
from medops.deid.policy import Applied, apply_policy
from medops.deid.pseudonyms import Pseudonymizer
from medops.deid.spans import CATEGORIES
from medops.errors import ConfigurationError
from medops.manifest import Manifest, timed
from medops.privacy.keys import (
    PATIENT_KEY,
    PseudonymKeyError,
    key_id,
    load_key,
    optional_secret,
    patient_key,
)
from medops.recipe import Recipe
from medops.results import VOCABULARY

logger = logging.getLogger(__name__)

QUARANTINE = "quarantine.jsonl"


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def _curate(
    records: list[Record], recipe: Recipe
) -> tuple[list[Record], list[Quarantined], list[str]]:
    """Clean, keep the chosen classes, dedupe; returns kept rows, rejects and classes."""
    data = recipe.data
    kept, rejected = clean_records(records, data.label_map, data.min_chars, data.max_chars)
    classes = select_classes(kept, data.classes, data.top_k_classes)
    kept, out_of_scope = keep_classes(kept, classes)
    kept, duplicates = dedupe(kept)
    kept, near_duplicates = near_dedupe(kept)
    return kept, rejected + out_of_scope + duplicates + near_duplicates, classes


def _deidentify(
    records: list[Record],
    recipe: Recipe,
    known: frozenset[str],
    pseudonymizer: Pseudonymizer | None,
) -> tuple[list[Record], Applied]:
    """The ``medops data deid`` path: the recall measured in bench/ is the recall here.

    A row's date shift (pseudonymize) is keyed by its patient id, else by its own id.
    """
    applied = apply_policy(
        [r.text for r in records],
        [r.patient or r.id for r in records],
        recipe.deid,
        known,
        recipe.deid.language,
        pseudonymizer,
    )
    rewritten = [replace(r, text=t) for r, t in zip(records, applied.texts, strict=True)]
    return rewritten, applied


def pseudonymizer_for(recipe: Recipe) -> Pseudonymizer | None:
    """The policy's key, loaded before any work: a missing key fails the stage at once."""
    if recipe.deid.policy != "pseudonymize":
        return None
    try:
        return Pseudonymizer(load_key())
    except PseudonymKeyError as error:
        raise PseudonymKeyError(f"deid.policy is pseudonymize: {error}") from None


def _load_tokenizer(base: str) -> Any:
    # imported here: medops.model pulls in peft and the training stack, needed only here
    from transformers import AutoTokenizer

    from medops.model.base import resolve_base

    return AutoTokenizer.from_pretrained(resolve_base(base), local_files_only=True)


def _percentile(ordered: list[int], percent: int) -> int:
    """Nearest-rank percentile of an ascending list (0 when empty)."""
    return ordered[max(0, -(-percent * len(ordered) // 100) - 1)] if ordered else 0


def _token_lengths(records: list[Record], recipe: Recipe) -> list[int] | None:
    """Token lengths of the de-identified texts under the model's tokenizer.

    A tokenizer that cannot be loaded here (e.g. a hub id not in the local cache) gives
    None (recorded as ``tokens_unavailable``), unless ``data.max_tokens`` needs it.
    """
    try:
        tokenizer = _load_tokenizer(recipe.model.base)
    except (OSError, ValueError, ImportError) as error:
        if recipe.data.max_tokens is not None:
            raise ConfigurationError(
                f"data.max_tokens needs the tokenizer of model.base {recipe.model.base!r}, "
                f"which cannot be loaded here ({type(error).__name__}); put the model in the "
                "local cache or remove data.max_tokens"
            ) from None
        logger.warning("prepare: no tokenizer for %s (%s)", recipe.model.base, error)
        return None
    return [len(ids) for ids in tokenizer([r.text for r in records], verbose=False)["input_ids"]]


def _token_limit(
    records: list[Record], applied: Applied, lengths: list[int] | None, max_tokens: int | None
) -> tuple[list[Record], Applied, list[int] | None, list[Quarantined]]:
    """Quarantine rows over ``data.max_tokens`` (``too_many_tokens``; none when unset), so
    the de-identification counts and token lengths describe the rows kept."""
    if lengths is None or max_tokens is None:
        return records, applied, lengths, []
    fits = [n <= max_tokens for n in lengths]
    pairs = list(zip(records, fits, strict=True))
    over = [Quarantined(r.id, r.source, "too_many_tokens") for r, ok in pairs if not ok]
    kept_lengths = [n for n, ok in zip(lengths, fits, strict=True) if ok]
    return [r for r, ok in pairs if ok], applied.only(fits), kept_lengths, over


def _token_counts(lengths: list[int] | None, recipe: Recipe) -> dict[str, int]:
    """Percentiles of the kept rows' token lengths.

    Rows over ``model.max_length`` are counted, not dropped: training truncates them
    (classification) or applies ``lm.overlong`` (causal-lm, where the prompt adds more);
    ``data.max_tokens`` quarantines the longest instead.
    """
    if lengths is None:
        return {"tokens_unavailable": 1}
    lengths = sorted(lengths)
    return {
        "tokens_p50": _percentile(lengths, 50),
        "tokens_p95": _percentile(lengths, 95),
        "tokens_max": lengths[-1] if lengths else 0,
        "rows_over_max_length": sum(n > recipe.model.max_length for n in lengths),
    }


def _label_counts(splits: dict[str, list[Record]]) -> dict[str, dict[str, int]]:
    return {name: dict(sorted(Counter(r.label for r in splits[name]).items())) for name in SPLITS}


def _row(record: Record, key: bytes | None) -> dict[str, Any]:
    row: dict[str, Any] = {"id": record.id, "text": record.text, "label": record.label}
    if record.fields:
        row["fields"] = record.fields
    if key is not None and record.patient:
        row[PATIENT_KEY] = patient_key(key, record.patient)
    return row


def _patient_keys(splits: dict[str, list[Record]], key: bytes | None) -> dict[str, int]:
    """Rows erasable by patient, and rows with a patient id but no key to hash it with."""
    with_patient = sum(bool(r.patient) for name in SPLITS for r in splits[name])
    if key is None and with_patient:
        logger.warning(
            "prepare: MEDOPS_DEID_KEY is not set: %d rows with a patient id get no patient "
            "key and cannot be erased by patient (docs/privacy.md)",
            with_patient,
        )
    keyed = with_patient if key is not None else 0
    return {"patient_keys": keyed, "patient_keys_unavailable": with_patient - keyed}


# the point-in-time context of each row (medops.tasks.context): records give the times,
# which are never written; rows give the join keys (fields, patient_key)
ContextJoin = Callable[[Sequence[Record], Sequence[dict[str, Any]]], list[dict[str, Any]]]


def _write(
    out_dir: Path,
    splits: dict[str, list[Record]],
    quarantined: list[Quarantined],
    classes: list[str],
    key: bytes | None,
    context: ContextJoin | None = None,
) -> dict[str, str]:
    outputs = {}
    for name in SPLITS:
        file = f"{name}.jsonl"
        rows = [_row(r, key) for r in splits[name]]
        if context is not None:
            for row, joined in zip(rows, context(splits[name], rows), strict=True):
                row["context"] = joined
        write_jsonl(out_dir / file, rows)
        outputs[name] = file
    ordered = sorted(quarantined, key=lambda q: (q.id, q.source, q.reason))
    write_jsonl(out_dir / QUARANTINE, (q.to_dict() for q in ordered))
    (out_dir / LABELS).write_text(json.dumps(classes, indent=2) + "\n", encoding="utf-8")
    return {**outputs, "quarantine": QUARANTINE, "labels": LABELS}


def write_recipe(out_dir: Path, recipe: Recipe) -> str:
    text = json.dumps(recipe.to_dict(), indent=2, sort_keys=True) + "\n"
    (out_dir / RECIPE).write_text(text, encoding="utf-8")
    return RECIPE


def _counts(
    rows_in: int,
    splits: dict[str, list[Record]],
    quarantined: list[Quarantined],
    applied: Applied,
) -> dict[str, int]:
    counts = accounted(rows_in, splits, [q.reason for q in quarantined])
    counts.update(deid_counts(applied))
    return counts


def accounted(rows_in: int, splits: dict[str, list[Any]], reasons: list[str]) -> dict[str, int]:
    """Rows in, kept (per split) and quarantined (per reason); a row lost is a bug, raised."""
    kept = sum(len(rows) for rows in splits.values())
    if rows_in != kept + len(reasons):
        raise RuntimeError(
            f"prepare lost rows: {rows_in} read, {kept} kept + {len(reasons)} quarantined"
        )
    counts = {"rows_in": rows_in, "rows_kept": kept, "rows_quarantined": len(reasons)}
    for reason, n in sorted(Counter(reasons).items()):
        counts[f"quarantined_{reason}"] = n
    counts.update({name: len(splits[name]) for name in SPLITS})
    return counts


def deid_counts(applied: Applied) -> dict[str, int]:
    """What de-identification found and dropped, by category, language and filter rule."""
    counts: dict[str, int] = {}
    spans = Counter(s.type for row in applied.spans for s in row)
    counts.update({f"deid_{category}": spans[category] for category in CATEGORIES})
    counts["deid_rows_with_phi"] = sum(bool(row) for row in applied.spans)
    for language, n in sorted(Counter(applied.languages).items()):
        counts[f"deid_language_{language}"] = n
    counts["deid_dates_redacted_unparsed"] = applied.dates_redacted
    for rule, n in sorted(applied.dropped.items()):
        counts[f"deid_dropped_{rule}"] = n
    return counts


def prepare(recipe: Recipe, out_dir: Path, context: ContextJoin | None = None) -> Manifest:
    """Run the whole stage into ``out_dir``; the caller writes the returned manifest.

    ``context`` adds each row's point-in-time features as its ``context`` (a recipe with
    ``features:``; the layer above joins them, as this one knows no feature store)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(stage="prepare", recipe_hash=recipe.content_hash())
    key = optional_secret()  # a key set but too short fails here, before any work
    pseudonymizer = pseudonymizer_for(recipe)
    with timed(manifest):
        sources = ingest(recipe.data.sources, recipe.data.columns, recipe.deid.keep_terms_from)
        rows_in = sum(s.rows_in for s in sources)
        records = [r for s in sources for r in s.records]
        quarantined = [q for s in sources for q in s.quarantined]
        logger.info("prepare: %d rows read from %d sources", rows_in, len(sources))
        kept, rejected, classes = _curate(records, recipe)
        quarantined += rejected
        logger.info("prepare: %d classes; de-identifying %d rows ...", len(classes), len(kept))
        # drug names (keep_terms_from) and the class names are vocabulary, not PHI:
        # spaCy small tags "Acne" as a place and brand names as people
        known = vocabulary(
            [*recipe.deid.keep_terms, *(t for s in sources for t in s.terms), *classes]
        )
        kept, applied = _deidentify(kept, recipe, known, pseudonymizer)
        lengths = _token_lengths(kept, recipe)
        kept, applied, lengths, too_long = _token_limit(
            kept, applied, lengths, recipe.data.max_tokens
        )
        quarantined += too_long
        splits = split_rows(kept, classes, recipe.data.validation_fraction, recipe.seed)
        manifest.counts = _counts(rows_in, splits, quarantined, applied)
        manifest.outputs = _write(out_dir, splits, quarantined, classes, key, context)
        manifest.outputs["recipe"] = write_recipe(out_dir, recipe)
        (out_dir / VOCABULARY).write_text(json.dumps(sorted(known)) + "\n", encoding="utf-8")
        manifest.outputs["deid_vocabulary"] = VOCABULARY
        manifest.counts.update(_patient_keys(splits, key))
        manifest.counts["sources_decoded_cp1252"] = sum(s.cp1252_fallback for s in sources)
        manifest.counts["characters_replaced_undecodable"] = sum(s.replaced_chars for s in sources)
        # patient-level leakage check: train/validation never share a patient (group split);
        # a test patient also seen in training is counted, never silently moved
        manifest.counts.update(leakage(splits))
        manifest.counts["deid_known_terms"] = len(known)
        manifest.counts.update(_token_counts(lengths, recipe))
        manifest.inputs = {s.name: {"path": s.name, "sha256": s.sha256} for s in sources}
        manifest.extra = {
            "dataset_hash": dataset_hash(out_dir),
            "labels": classes,
            "label_counts": _label_counts(splits),
        }
        if key is not None:
            manifest.extra["patient_key_id"] = key_id(key)
        (out_dir / CARD).write_text(dataset_card(manifest, recipe), encoding="utf-8")
        manifest.outputs["card"] = CARD
        logger.info(
            "prepare: kept %d (train %d, validation %d, test %d), quarantined %d",
            manifest.counts["rows_kept"],
            *(len(splits[name]) for name in SPLITS),
            len(quarantined),
        )
    return manifest
