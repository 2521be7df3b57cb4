"""The instruct prepare stage: read conversations -> dedupe -> de-identify every turn ->
token limit -> split.

Writes ``train/validation/test.jsonl`` rows ``{"id", "messages"}`` (de-identified turns),
``quarantine.jsonl`` (id, source and reason, never text), the de-identification vocabulary
and ``DATASET_CARD.md``. Every record read is kept or quarantined, and the counts say which.
"""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path
from typing import Any

from medops.assets import resolve_uri
from medops.data.card import CARD
from medops.data.dataset import dataset_hash
from medops.data.prepare import (
    QUARANTINE,
    accounted,
    deid_counts,
    pseudonymizer_for,
    write_jsonl,
    write_recipe,
)
from medops.data.split import SPLITS
from medops.deid.filters import vocabulary
from medops.deid.policy import Applied, apply_policy
from medops.deid.pseudonyms import Pseudonymizer
from medops.errors import DataError
from medops.manifest import Manifest, timed
from medops.model.base import resolve_base
from medops.model.causal_lm import load_tokenizer
from medops.results import VOCABULARY
from medops.tasks.instruct.examples import (
    first_turns_that_fit,
    prompt_and_reference,
    token_length,
    with_system,
)
from medops.tasks.instruct.formats import Conversation, parse, read_records
from medops.tasks.instruct.recipe import InstructRecipe

logger = logging.getLogger(__name__)
Row = dict[str, Any]  # {"id", "messages", "role"} while preparing
Quarantine = dict[str, str]  # {"id", "source", "reason"}
HARD_EXAMPLES = "hard_examples.jsonl"


def _hard_examples(records: list[Any], source: str) -> list[dict[str, Any]]:
    """Reviewed items a clinician rejected, with the reviewer's reason: not trained on, kept
    to test the next model on what the last one got wrong."""
    return [
        {
            "id": r.get("id"),
            "source": source,
            "review_reason": r.get("reason", ""),
            "messages": r.get("item", {}).get("messages", []),
            "model_answer": r.get("fields", {}).get("answer", {}).get("model", ""),
        }
        for r in records
        if isinstance(r, dict) and r.get("verdict") == "reject"
    ]


def _read(
    recipe: InstructRecipe,
) -> tuple[list[Row], list[Quarantine], dict[str, Any], list[dict[str, Any]]]:
    """Every source's conversations (ids made unique across sources), what was quarantined,
    the formats used and the reviewers' hard examples."""
    rows: list[Row] = []
    quarantined: list[Quarantine] = []
    formats: dict[str, Any] = {}
    hard: list[dict[str, Any]] = []
    seen: set[str] = set()
    for source in recipe.data.sources:
        path = resolve_uri(source.uri)
        records = read_records(path)
        kept, rejected, fmt = parse(records, source.format)
        if fmt == "feedback":
            hard += _hard_examples(records, path.name)
        how = "detected" if source.format == "auto" else "given"
        logger.info("prepare: %s: %d records, format %s (%s)", path.name, len(records), fmt, how)
        formats[path.name] = {"format": fmt, "records": len(records), "role": source.role}
        quarantined += [{"id": i, "source": path.name, "reason": r} for i, r in rejected]
        for conversation in kept:
            if conversation.id in seen:
                quarantined.append(
                    {"id": conversation.id, "source": path.name, "reason": "duplicate_id"}
                )
                continue
            seen.add(conversation.id)
            rows.append(_row(conversation, source.role, path.name))
    return rows, quarantined, formats, hard


def _row(conversation: Conversation, role: str, source: str) -> Row:
    return {
        "id": conversation.id,
        "messages": list(conversation.messages),
        "role": role,
        "source": source,
    }


def _dedupe(rows: list[Row]) -> tuple[list[Row], list[Quarantine]]:
    """Drop repeated conversations; a training copy of a test conversation goes too.

    Test rows are never dropped for resembling each other beyond exact repeats, so the
    held-out set stays what the user gave.
    """
    key = lambda row: json.dumps(row["messages"], sort_keys=True)  # noqa: E731
    test = [r for r in rows if r["role"] == "test"]
    test_keys = {key(r) for r in test}
    test_prompts = {json.dumps(prompt_and_reference(r["messages"])[0]) for r in test}
    kept, dropped, seen = [], [], set()
    for row in sorted(rows, key=lambda r: r["role"] != "test"):  # test rows claim first
        k, reason = key(row), None
        if k in seen:
            reason = "duplicate_of_test" if row["role"] == "train" and k in test_keys else None
            reason = reason or "duplicate"
        elif row["role"] == "train" and (
            json.dumps(prompt_and_reference(row["messages"])[0]) in test_prompts
        ):
            reason = "prompt_of_test"  # e.g. a reviewed test item with its corrected answer
        if reason:
            dropped.append({"id": row["id"], "source": row["source"], "reason": reason})
            continue
        seen.add(k)
        kept.append(row)
    return kept, dropped


def _deidentify(
    rows: list[Row], recipe: InstructRecipe, known: frozenset[str], pseudonymizer: Any
) -> Applied:
    """Every turn through the recipe's policy, keyed by its conversation: one date shift
    and one set of surrogates per conversation, whichever turn a name appears in."""
    texts = [m["content"] for row in rows for m in row["messages"]]
    keys = [row["id"] for row in rows for _ in row["messages"]]
    applied = apply_policy(texts, keys, recipe.deid, known, recipe.deid.language, pseudonymizer)
    rewritten = iter(applied.texts)
    for row in rows:
        row["messages"] = [{**m, "content": next(rewritten)} for m in row["messages"]]
    return applied


def _token_limit(rows: list[Row], recipe: InstructRecipe) -> tuple[list[Row], list[Quarantine]]:
    """Quarantine (or cut, under ``first_turns``) conversations over ``model.max_length``."""
    tokenizer = load_tokenizer(resolve_base(recipe.model.base))
    limit, system = recipe.model.max_length, recipe.lm.system_prompt
    kept, dropped = [], []
    for row in rows:
        turns = with_system(row["messages"], system)
        if token_length(tokenizer, row["id"], turns) <= limit:
            kept.append(row)
            continue
        cut = None
        if recipe.lm.overlong == "first_turns":
            cut = first_turns_that_fit(tokenizer, row["id"], turns, limit)
        if cut is None:
            dropped.append({"id": row["id"], "source": row["source"], "reason": "too_many_tokens"})
            continue
        own = len(cut) - (len(turns) - len(row["messages"]))  # the system turn is not stored
        kept.append({**row, "messages": row["messages"][:own], "cut": True})
    return kept, dropped


def _split(rows: list[Row], fraction: float, seed: int) -> dict[str, list[Row]]:
    """Test-role rows are the test split; train-role rows are shuffled into train and
    validation (at least one validation conversation)."""
    train = [r for r in rows if r["role"] == "train"]
    random.Random(seed).shuffle(train)  # noqa: S311 - a reproducible split, not a secret
    n_val = max(1, round(len(train) * fraction))
    splits = {
        "train": train[n_val:],
        "validation": train[:n_val],
        "test": [r for r in rows if r["role"] == "test"],
    }
    for name in SPLITS:
        if not splits[name]:
            raise DataError(
                f"prepare: the {name} split is empty after quarantine; check "
                "quarantine.jsonl, model.max_length and the sources' roles"
            )
    return splits


def _deid_line(recipe: InstructRecipe) -> str:
    if recipe.deid.policy == "none":
        return f"Not de-identified (`deid.policy: none`): {recipe.deid.no_phi_reason}."
    return f"Every turn is de-identified with policy `{recipe.deid.policy}`."


def _card(manifest: Manifest, recipe: InstructRecipe) -> str:
    counts = manifest.counts
    lines = [
        f"# Dataset card: {recipe.name}",
        "",
        "Conversations for instruction/chat fine-tuning (`task: instruct`). "
        + _deid_line(recipe)
        + " quarantine.jsonl names each record left out and why, never its text.",
        "",
        "| source | format | role | records |",
        "|---|---|---|---|",
        *(
            f"| {name} | {info['format']} | {info['role']} | {info['records']} |"
            for name, info in manifest.extra["sources"].items()
        ),
        "",
        "| count | value |",
        "|---|---|",
        *(f"| {key} | {value} |" for key, value in sorted(counts.items())),
        "",
        f"Conversations over {recipe.model.max_length} tokens: {recipe.overlong_handling()}.",
    ]
    return "\n".join(lines) + "\n"


def _counts(
    rows_in: int, splits: dict[str, list[Row]], quarantined: list[Quarantine], applied: Applied
) -> dict[str, int]:
    counts = accounted(rows_in, splits, [q["reason"] for q in quarantined])
    counts["turns"] = sum(len(r["messages"]) for rows in splits.values() for r in rows)
    counts["conversations_cut"] = sum(bool(r.get("cut")) for rows in splits.values() for r in rows)
    counts.update(deid_counts(applied))
    return counts


def prepare(recipe: InstructRecipe, out_dir: Path) -> Manifest:
    """Run the whole stage into ``out_dir``; the caller writes the returned manifest."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = Manifest(stage="prepare", recipe_hash=recipe.content_hash())
    pseudonymizer: Pseudonymizer | None = pseudonymizer_for(recipe)
    with timed(manifest):
        rows, quarantined, sources, hard = _read(recipe)
        rows_in = len(rows) + len(quarantined)
        rows, duplicates = _dedupe(rows)
        known = vocabulary(recipe.data.keep_terms)
        logger.info("prepare: de-identifying %d conversations ...", len(rows))
        applied = _deidentify(rows, recipe, known, pseudonymizer)
        rows, too_long = _token_limit(rows, recipe)
        quarantined += duplicates + too_long
        splits = _split(rows, recipe.data.validation_fraction, recipe.seed)
        for name in SPLITS:
            write_jsonl(
                out_dir / f"{name}.jsonl",
                ({"id": r["id"], "messages": r["messages"]} for r in splits[name]),
            )
            manifest.outputs[name] = f"{name}.jsonl"
        ordered = sorted(quarantined, key=lambda q: (q["source"], q["id"], q["reason"]))
        write_jsonl(out_dir / QUARANTINE, ordered)
        manifest.outputs["quarantine"] = QUARANTINE
        if hard:
            write_jsonl(out_dir / HARD_EXAMPLES, hard)
            manifest.outputs["hard_examples"] = HARD_EXAMPLES
        manifest.outputs["recipe"] = write_recipe(out_dir, recipe)
        (out_dir / VOCABULARY).write_text(json.dumps(sorted(known)) + "\n", encoding="utf-8")
        manifest.outputs["deid_vocabulary"] = VOCABULARY
        manifest.counts = _counts(rows_in, splits, quarantined, applied)
        manifest.counts["hard_examples"] = len(hard)
        manifest.extra = {"dataset_hash": dataset_hash(out_dir), "sources": sources}
        (out_dir / CARD).write_text(_card(manifest, recipe), encoding="utf-8")
        manifest.outputs["card"] = CARD
        logger.info(
            "prepare: kept %d conversations (train %d, validation %d, test %d), quarantined %d",
            manifest.counts["rows_kept"],
            *(len(splits[name]) for name in SPLITS),
            len(quarantined),
        )
    return manifest
