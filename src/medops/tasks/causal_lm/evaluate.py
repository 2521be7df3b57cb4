"""The causal-LM evaluate stage: the tuned model and the untuned base on the same test rows.

Both models get the same prompts, decoding and scoring in this one run, so the baseline
answers exactly "did fine-tuning help?". With ``lm.few_shot: N`` the untuned base is scored
a second time with N worked examples from the train split as prior chat turns, which
answers "would prompting alone have done it?". With ``gate.against_champion`` the version
holding the registry alias answers the same prompts too: "is it better than what is
served?". Every summary number gets a bootstrap interval and the tuned-minus-base (and
tuned-minus-champion) difference a paired one, also per slice (``evaluate.slices``).
Outputs hold row ids, gold fields and generated answers (JSON of fields), never the
patient's text.
"""

from __future__ import annotations

import html
import json
import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from medops.data.dataset import read_labels, read_split
from medops.evaluate.generation_metrics import (
    INVALID_LABEL,
    LABEL_METRICS,
    extraction_metrics,
    label_pairs,
    normalise,
    parse_answer,
    row_scores,
)
from medops.evaluate.intervals import PREFIXES, RowScores, combine, mean_scores
from medops.evaluate.metrics import label_scores, ratio
from medops.evaluate.report import confusion_png, html_report
from medops.evaluate.uncertainty import measure
from medops.manifest import Manifest, timed
from medops.model.base import resolve_base
from medops.model.causal_lm import load_tokenizer
from medops.model.generate import generate, load_for_generation
from medops.registry.champion import Champion, champion_html, fetch_champion
from medops.tasks.causal_lm import TASK
from medops.tasks.causal_lm.examples import TargetError, chat_example, prompt_messages, target
from medops.tasks.causal_lm.recipe import CausalLMRecipe

log = logging.getLogger(__name__)
Conversation = list[dict[str, str]]
# each side of PREFIXES (record key -> metric prefix) as the report names it; text_only:
# the fine-tuned model prompted without its context
TITLES = {
    "model": "fine-tuned",
    "baseline": "base model",
    "fewshot": "few-shot base",
    "champion": "current champion",
    "text_only": "fine-tuned, no context",
}
SLICE_METRICS = ("json_validity", "field_f1")  # per slice, beside the gate's metric


def _label_field(recipe: CausalLMRecipe) -> str | None:
    return next((f.name for f in recipe.lm.fields if f.source == "label"), None)


def few_shot_rows(
    rows: list[dict[str, Any]], recipe: CausalLMRecipe, classes: list[str] | None
) -> list[dict[str, Any]]:
    """``lm.few_shot`` train rows: the shortest of each label in turn, labels in ``classes``
    order.

    Deterministic (no sampling, ties broken by id) so a rerun prompts identically; one
    label per shot before any repeats, so the shots show different answers; shortest, so
    the prompts stay cheap on a CPU. Rows whose target cannot be built are never shown.
    """
    if not recipe.lm.few_shot:
        return []
    by_label: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        try:
            target(row, recipe.lm)
        except TargetError:
            continue
        by_label[row["label"]].append(row)
    order = [c for c in classes or [] if c in by_label] or sorted(by_label)
    queues = [sorted(by_label[c], key=lambda r: (len(r["text"]), r["id"])) for c in order]
    shots: list[dict[str, Any]] = []
    for depth in range(max((len(q) for q in queues), default=0)):
        shots += [queue[depth] for queue in queues if depth < len(queue)]
    return shots[: recipe.lm.few_shot]


def few_shot_messages(
    shots: list[dict[str, Any]], row: dict[str, Any], recipe: CausalLMRecipe
) -> Conversation:
    """Each shot as a user turn and its gold JSON answer, then the question itself:
    exactly the format the fine-tuned model was trained on, only as context."""
    turns = [turn for shot in shots for turn in chat_example(shot, recipe.lm)]
    return [*turns, *prompt_messages(row["text"], recipe.lm, row.get("context"))]


def field_scores(
    generations: list[str], golds: list[dict[str, str]], fields: list[str]
) -> RowScores:
    """Field-level precision, recall and F1 per field, and micro over all fields.

    Slot-filling counting: a field is *predicted* when the answer is a JSON object with a
    non-empty value for it, *correct* when that value equals the gold one after
    ``normalise``. Precision = correct / predicted (0 when nothing is predicted), recall =
    correct / gold values. ``exact_match_<field>`` is recall here (gold is never empty); an
    abstaining model keeps its precision, which exact match cannot show. Kept as per-row
    counts (predicted, gold, correct per field), so resamples and slices are rescored.
    """
    parsed = [parse_answer(text) for text in generations]
    counts = np.zeros((len(parsed), len(fields), 3))
    for row, (answer, gold) in enumerate(zip(parsed, golds, strict=True)):
        for column, field in enumerate(fields):
            said = normalise((answer or {}).get(field, ""))
            truth = normalise(gold.get(field, ""))
            counts[row, column] = (bool(said), bool(truth), bool(said) and said == truth)

    def metrics(totals: np.ndarray) -> dict[str, np.ndarray]:
        per_field = totals.reshape(*totals.shape[:-1], len(fields), 3)
        scores: dict[str, np.ndarray] = {}
        for column, field in enumerate(fields):
            scores.update(_prf(per_field[..., column, :], f"_{field}"))
        scores.update(_prf(per_field.sum(axis=-2), ""))
        return scores

    return RowScores(counts.reshape(len(parsed), -1), metrics)


def field_prf(
    generations: list[str], golds: list[dict[str, str]], fields: list[str]
) -> dict[str, float]:
    """:func:`field_scores` on all rows."""
    return field_scores(generations, golds, fields).point()


def _prf(counts: np.ndarray, suffix: str) -> dict[str, np.ndarray]:
    predicted, gold, correct = counts[..., 0], counts[..., 1], counts[..., 2]
    return {
        f"field_precision{suffix}": ratio(correct, predicted),
        f"field_recall{suffix}": ratio(correct, gold),
        f"field_f1{suffix}": ratio(2 * correct, predicted + gold),
    }


def _score(
    answers: list[str],
    golds: list[dict[str, str]],
    recipe: CausalLMRecipe,
    classes: list[str] | None,
) -> dict[str, Any]:
    """extraction_metrics plus the field-level P/R/F1 it does not report."""
    fields = [f.name for f in recipe.lm.fields]
    result = extraction_metrics(answers, golds, fields, _label_field(recipe), classes)
    result["summary"].update(field_prf(answers, golds, fields))
    return result


def _row_scores(
    answers: list[str],
    golds: list[dict[str, str]],
    recipe: CausalLMRecipe,
    classes: list[str] | None,
) -> RowScores:
    """The same summary as :func:`_score`, as per-row counts to resample and slice."""
    fields = [f.name for f in recipe.lm.fields]
    parsed = [parse_answer(answer) for answer in answers]
    parts = [
        mean_scores(row_scores(answers, parsed, golds, fields)),
        field_scores(answers, golds, fields),
    ]
    field = _label_field(recipe)
    if field and classes:
        labels = label_scores(*label_pairs(answers, golds, field, classes), classes)
        parts.append(
            RowScores(
                labels.counts,
                lambda totals: {
                    f"{field}_{name}": values
                    for name, values in labels.metrics(totals).items()
                    if name in LABEL_METRICS
                },
            )
        )
    return combine(*parts)


class _Generator:
    """One loaded model answering any number of prompt sets (the base answers two)."""

    def __init__(self, path: str, recipe: CausalLMRecipe) -> None:
        self.tokenizer = load_tokenizer(path)
        self.model = load_for_generation(path)
        self.lm = recipe.lm

    def __call__(self, conversations: list[Conversation], label: str) -> list[str]:
        lm = self.lm
        return generate(
            self.model, self.tokenizer, conversations, lm.max_new_tokens, lm.eval_batch_size, label
        )


def _shown(answer: str) -> str:
    """A generation as the report shows it: its JSON fields, never free text.

    A model that answers in prose may echo the (de-identified) note; the report and the
    MLflow run that stores it get the parsed answer only.
    """
    parsed = parse_answer(answer)
    if parsed is None:
        return f"(not JSON, {len(answer)} characters)"
    return json.dumps(parsed, ensure_ascii=False)[:300]


def _samples_html(rows: list[dict[str, Any]], limit: int) -> str:
    sides = [side for side in PREFIXES if rows and side in rows[0]]
    head = "".join(f"<th>{TITLES[side]}</th>" for side in sides)
    items = "".join(
        f"<tr><td>{html.escape(r['id'])}</td><td>{html.escape(json.dumps(r['gold']))}</td>"
        + "".join(f"<td><code>{html.escape(_shown(r[side]))}</code></td>" for side in sides)
        + "</tr>"
        for r in rows[:limit]
    )
    return (
        f"<h2>{min(limit, len(rows))} sample generations</h2><table><tr><th>id</th>"
        f"<th>gold</th>{head}</tr>{items}</table>"
    )


def _comparison_html(results: dict[str, dict[str, Any]], shots: int) -> str:
    """Every metric side by side: fine-tuned, zero-shot base and (when run) few-shot base."""
    sides = list(results)
    head = "".join(
        f"<th>{TITLES[s]}{f' ({shots}-shot)' if s == 'fewshot' else ''}</th>" for s in sides
    )
    body = "".join(
        f"<tr><td>{html.escape(key)}</td>"
        + "".join(f"<td>{results[s]['summary'][key]:.4f}</td>" for s in sides)
        + "</tr>"
        for key in sorted(results["model"]["summary"])
    )
    title = "<h2>Fine-tuned vs same-run baselines</h2>"
    return f"{title}<table><tr><th>metric</th>{head}</tr>{body}</table>"


def _held_out(
    recipe: CausalLMRecipe, prepared: Path
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, str]]]:
    """The first ``lm.eval_limit`` test rows, those with a target, and their targets."""
    rows = read_split(prepared, "test")[: recipe.lm.eval_limit]
    scored, golds = [], []
    for row in rows:
        try:
            golds.append(target(row, recipe.lm))
            scored.append(row)
        except TargetError:
            continue
    return rows, scored, golds


def _generate_all(
    recipe: CausalLMRecipe,
    trained: Path,
    rows: list[dict[str, Any]],
    shots: list[dict[str, Any]],
    champion: Champion | None,
) -> dict[str, list[str]]:
    """Answers of each side, keyed as in ``PREFIXES``; the base is loaded once for both prompts.

    Rows prepared with features are prompted with their context line; the fine-tuned model
    then also answers without it (``text_only``), so the run says what the context added.
    The champion gets this recipe's prompts (its weights are compared, not its settings)."""
    log.info("evaluate: %d held-out rows, fine-tuned model", len(rows))
    prompts = [prompt_messages(r["text"], recipe.lm, r.get("context")) for r in rows]
    tuned = _Generator(str(trained / "model"), recipe)
    answers = {"model": tuned(prompts, "evaluate model")}
    if any(r.get("context") is not None for r in rows):
        log.info("evaluate: same rows, fine-tuned model without the context line")
        bare = [prompt_messages(r["text"], recipe.lm) for r in rows]
        answers["text_only"] = tuned(bare, "evaluate model, no context")
    del tuned
    log.info("evaluate: same rows, untuned base model (baseline)")
    base = _Generator(resolve_base(recipe.model.base), recipe)
    answers["baseline"] = base(prompts, "baseline")
    if shots:
        ids = ", ".join(s["id"] for s in shots)
        log.info("evaluate: same rows, base model, %d shots (train rows %s)", len(shots), ids)
        few = [few_shot_messages(shots, r, recipe) for r in rows]
        answers["fewshot"] = base(few, "few-shot baseline")
    del base
    if champion is not None and champion.model is not None:
        answers["champion"] = _Generator(str(champion.model), recipe)(prompts, "champion")
    return answers


def evaluate(recipe: CausalLMRecipe, out_dir: Path, prepared: Path, trained: Path) -> Manifest:
    manifest = Manifest(stage="evaluate", recipe_hash=recipe.content_hash())
    with timed(manifest):
        manifest.add_input("prepared", prepared)
        manifest.add_input("trained", trained / "model")
        rows, scored, golds = _held_out(recipe, prepared)
        field = _label_field(recipe)
        classes = read_labels(prepared) if field else None
        shots = few_shot_rows(read_split(prepared, "train"), recipe, classes)
        if recipe.lm.few_shot and len(shots) < recipe.lm.few_shot:
            log.warning(
                "evaluate: lm.few_shot %d, only %d usable train rows",
                recipe.lm.few_shot,
                len(shots),
            )
        champion = fetch_champion(recipe, TASK.pyfunc_path().name)
        answers = _generate_all(recipe, trained, scored, shots, champion)
        results = {side: _score(answers[side], golds, recipe, classes) for side in answers}
        measured = measure(
            {side: _row_scores(answers[side], golds, recipe, classes) for side in answers},
            scored,
            SLICE_METRICS,
            evaluation=recipe.evaluate,
            gate=recipe.gate,
            seed=recipe.seed,
            language=recipe.deid.language,
        )
        records = [
            {"id": row["id"], "gold": gold, **{side: answers[side][i] for side in answers}}
            for i, (row, gold) in enumerate(zip(scored, golds, strict=True))
        ]
        shot_ids = [s["id"] for s in shots]
        (out_dir / "metrics.json").write_text(
            json.dumps(
                {
                    **results,
                    "classes": classes,
                    "fewshot_ids": shot_ids,
                    "intervals": measured.intervals,
                    "slices": measured.slices,
                },
                indent=2,
            )
        )
        (out_dir / "generations.jsonl").write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8"
        )
        outputs = ["metrics.json", "generations.jsonl", "report.html"]
        png = ""
        if field and classes:
            png = "confusion.png"
            labels = [*classes, INVALID_LABEL]
            matrix = results["model"]["confusion"]
            confusion_png(matrix, labels, out_dir / png, f"{recipe.name}: {field}")
            outputs.append(png)
        manifest.outputs = {name: name for name in outputs}
        manifest.metrics = {
            f"{PREFIXES[side]}{key}": value
            for side, result in results.items()
            for key, value in result["summary"].items()
        }
        manifest.metrics.update(measured.manifest_metrics(recipe.gate.metric))
        if champion is not None:
            manifest.metrics.update(champion.metrics())
        html_report(
            recipe.name,
            results["model"],
            results["baseline"],
            png,
            out_dir / "report.html",
            extra_html=champion_html(manifest.metrics, results["model"]["summary"])
            + _comparison_html(results, len(shots))
            + _samples_html(records, recipe.lm.samples_in_report),
            flat=manifest.metrics,
            slices=measured.slices,
        )
        skipped = len(rows) - len(scored)
        manifest.counts = {"test": len(rows), "test_scored": len(scored), "test_skipped": skipped}
        manifest.counts["few_shot"] = len(shots)
        manifest.extra = {"fewshot_ids": shot_ids}
    return manifest
