"""The instruct evaluate stage: tuned and untuned base answer the same held-out prompts.

Each test conversation is cut before its final assistant turn; both models answer it with
the same template, system prompt and greedy decoding, and the answers are scored against
that turn (``evaluate.chat_metrics``). Every metric gets a bootstrap interval, and the
tuned-minus-base difference a paired one, so the gate can ask for a gain beyond noise.
The prepared conversations are already de-identified: the report's examples are too.
"""

from __future__ import annotations

import html
import json
import logging
import typing
from pathlib import Path
from typing import Any

from medops.data.dataset import read_split
from medops.evaluate.chat_metrics import SCORE_NAMES, compare, score_answers, summarise
from medops.manifest import Manifest, timed
from medops.model.base import resolve_base
from medops.model.causal_lm import load_tokenizer
from medops.model.generate import generate, load_for_generation
from medops.registry.champion import fetch_champion
from medops.tasks.instruct import TASK
from medops.tasks.instruct.examples import prompt_and_reference, with_system
from medops.tasks.instruct.recipe import InstructRecipe

log = logging.getLogger(__name__)
SIDES = {"model": "fine-tuned", "baseline": "base model"}


def _answers(
    path: str, prompts: list[list[dict[str, str]]], recipe: InstructRecipe, label: str
) -> list[str]:
    lm = recipe.lm
    model, tokenizer = load_for_generation(path), load_tokenizer(path)
    return generate(model, tokenizer, prompts, lm.max_new_tokens, lm.eval_batch_size, label)


def _cell(metrics: dict[str, float], name: str) -> str:
    return (
        f"{metrics[name]:.3f} [{metrics[f'{name}_ci_low']:.3f}, {metrics[f'{name}_ci_high']:.3f}]"
    )


def _report(
    recipe: InstructRecipe, metrics: dict[str, float], records: list[dict[str, Any]]
) -> str:
    rows = "".join(
        f"<tr><td>{name}</td>"
        + "".join(f"<td>{_cell(metrics, key)}</td>" for key in (name, f"baseline_{name}"))
        + f"<td>{_cell(metrics, f'{name}_diff')}</td></tr>"
        for name in SCORE_NAMES
    )
    shown = records[: recipe.lm.samples_in_report]
    samples = "".join(
        f"<tr><td>{html.escape(r['id'])}</td><td>{html.escape(r['question'][-400:])}</td>"
        f"<td>{html.escape(r['reference'])}</td><td>{html.escape(r['baseline'])}</td>"
        f"<td>{html.escape(r['model'])}</td></tr>"
        for r in shown
    )
    return (
        f"<!doctype html><meta charset='utf-8'><title>{html.escape(recipe.name)}</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{border:1px solid #ccc;"
        "padding:4px 8px;vertical-align:top}table{border-collapse:collapse}</style>"
        f"<h1>{html.escape(recipe.name)}: held-out conversations</h1>"
        f"<p>{len(records)} test conversations, final assistant turn scored; mean with 95% "
        "bootstrap interval; difference = fine-tuned minus base, paired.</p>"
        "<table><tr><th>metric</th><th>fine-tuned</th><th>base model</th><th>difference</th>"
        f"</tr>{rows}</table><h2>{len(shown)} de-identified examples</h2><table><tr><th>id</th>"
        "<th>last user turn</th><th>reference</th><th>base model</th><th>fine-tuned</th></tr>"
        f"{samples}</table>"
    )


def _champion(
    recipe: InstructRecipe,
    prompts: list[list[dict[str, str]]],
    references: list[str],
    tuned: dict[str, list[float]],
) -> dict[str, float]:
    """With ``gate.against_champion``: the version holding the alias answers the same prompts
    (its checked weights only, no code from the registry), scored and compared like the base."""
    champion = fetch_champion(recipe, TASK.pyfunc_path().name)
    if champion is None:
        return {}
    if champion.model is None:
        return champion.metrics()
    answers = _answers(str(champion.model), prompts, recipe, "champion")
    scores = score_answers(answers, references)
    resamples, seed = recipe.lm.bootstrap_resamples, recipe.seed
    against = compare(tuned, scores, resamples=resamples, seed=seed)
    return {
        **champion.metrics(),
        **summarise(scores, "champion_", resamples=resamples, seed=seed),
        **{k.replace("_diff", "_vs_champion_diff"): v for k, v in against.items()},
    }


def evaluate(recipe: InstructRecipe, out_dir: Path, prepared: Path, trained: Path) -> Manifest:
    manifest = Manifest(stage="evaluate", recipe_hash=recipe.content_hash())
    with timed(manifest):
        manifest.add_input("prepared", prepared)
        manifest.add_input("trained", trained / "model")
        rows = read_split(prepared, "test")[: recipe.lm.eval_limit]
        cut = [prompt_and_reference(typing.cast(list, row["messages"])) for row in rows]
        prompts = [with_system(prompt, recipe.lm.system_prompt) for prompt, _ in cut]
        references = [reference for _, reference in cut]
        log.info("evaluate: %d held-out conversations, fine-tuned model", len(rows))
        answers = {"model": _answers(str(trained / "model"), prompts, recipe, "evaluate model")}
        log.info("evaluate: same conversations, untuned base model (baseline)")
        answers["baseline"] = _answers(resolve_base(recipe.model.base), prompts, recipe, "baseline")
        scores = {side: score_answers(answers[side], references) for side in SIDES}
        resamples, seed = recipe.lm.bootstrap_resamples, recipe.seed
        metrics = {
            **summarise(scores["model"], resamples=resamples, seed=seed),
            **summarise(scores["baseline"], "baseline_", resamples=resamples, seed=seed),
            **compare(scores["model"], scores["baseline"], resamples=resamples, seed=seed),
        }
        metrics.update(_champion(recipe, prompts, references, scores["model"]))
        records = [
            {
                "id": row["id"],
                "question": prompt[-1]["content"],
                "reference": reference,
                **{side: answers[side][i] for side in SIDES},
            }
            for i, (row, (prompt, reference)) in enumerate(zip(rows, cut, strict=True))
        ]
        (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        (out_dir / "generations.jsonl").write_text(
            "".join(
                json.dumps({k: r[k] for k in ("id", *SIDES)}, ensure_ascii=False) + "\n"
                for r in records
            ),
            encoding="utf-8",
        )
        (out_dir / "report.html").write_text(_report(recipe, metrics, records), encoding="utf-8")
        manifest.outputs = {n: n for n in ("metrics.json", "generations.jsonl", "report.html")}
        manifest.metrics = metrics
        manifest.counts = {"test": len(rows), "test_scored": len(rows)}
    return manifest
