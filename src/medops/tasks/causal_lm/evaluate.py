"""The causal-LM evaluate stage: the tuned model and the untuned base on the same test rows.

Both models get the same prompts, decoding and scoring in this one run, so the baseline
answers exactly "did fine-tuning help?". Outputs hold row ids, gold fields and generated
answers (JSON of fields), never the patient's text.
"""

from __future__ import annotations

import html
import json
import logging
from pathlib import Path
from typing import Any

from medops.data.dataset import read_labels, read_split
from medops.evaluate.generation_metrics import INVALID_LABEL, extraction_metrics, parse_answer
from medops.evaluate.report import confusion_png, html_report
from medops.manifest import Manifest, timed
from medops.model.base import resolve_base
from medops.model.causal_lm import load_tokenizer
from medops.model.generate import generate, load_for_generation
from medops.tasks.causal_lm.examples import TargetError, prompt_messages, target
from medops.tasks.causal_lm.recipe import CausalLMRecipe

log = logging.getLogger(__name__)


def _label_field(recipe: CausalLMRecipe) -> str | None:
    return next((f.name for f in recipe.lm.fields if f.source == "label"), None)


def _answers(
    model_path: str, conversations: list[list[dict[str, str]]], recipe: CausalLMRecipe, label: str
) -> list[str]:
    tokenizer = load_tokenizer(model_path)
    model = load_for_generation(model_path)
    lm = recipe.lm
    return generate(
        model, tokenizer, conversations, lm.max_new_tokens, lm.eval_batch_size, label=label
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
    items = "".join(
        f"<tr><td>{html.escape(r['id'])}</td><td>{html.escape(json.dumps(r['gold']))}</td>"
        f"<td><code>{html.escape(_shown(r['model']))}</code></td>"
        f"<td><code>{html.escape(_shown(r['baseline']))}</code></td></tr>"
        for r in rows[:limit]
    )
    return (
        f"<h2>{min(limit, len(rows))} sample generations</h2><table><tr><th>id</th>"
        f"<th>gold</th><th>fine-tuned</th><th>base model</th></tr>{items}</table>"
    )


def evaluate(recipe: CausalLMRecipe, out_dir: Path, prepared: Path, trained: Path) -> Manifest:
    manifest = Manifest(stage="evaluate", recipe_hash=recipe.content_hash())
    with timed(manifest):
        manifest.add_input("prepared", prepared)
        manifest.add_input("trained", trained / "model")
        rows = read_split(prepared, "test")[: recipe.lm.eval_limit]
        scored, golds, skipped = [], [], 0
        for row in rows:
            try:
                golds.append(target(row, recipe.lm))
                scored.append(row)
            except TargetError:
                skipped += 1
        conversations = [prompt_messages(r["text"], recipe.lm) for r in scored]
        log.info("evaluate: %d held-out rows, fine-tuned model", len(scored))
        tuned = _answers(str(trained / "model"), conversations, recipe, "evaluate model")
        log.info("evaluate: same rows, untuned base model (baseline)")
        base = _answers(resolve_base(recipe.model.base), conversations, recipe, "baseline")

        fields = [f.name for f in recipe.lm.fields]
        field = _label_field(recipe)
        classes = read_labels(prepared) if field else None
        result = extraction_metrics(tuned, golds, fields, field, classes)
        baseline = extraction_metrics(base, golds, fields, field, classes)
        records = [
            {"id": r["id"], "gold": g, "model": t, "baseline": b}
            for r, g, t, b in zip(scored, golds, tuned, base, strict=True)
        ]
        (out_dir / "metrics.json").write_text(
            json.dumps({"model": result, "baseline": baseline, "classes": classes}, indent=2)
        )
        (out_dir / "generations.jsonl").write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8"
        )
        outputs = ["metrics.json", "generations.jsonl", "report.html"]
        png = ""
        if field and classes:
            png = "confusion.png"
            labels = [*classes, INVALID_LABEL]
            confusion_png(result["confusion"], labels, out_dir / png, f"{recipe.name}: {field}")
            outputs.append(png)
        html_report(
            recipe.name,
            result,
            baseline,
            png,
            out_dir / "report.html",
            extra_html=_samples_html(records, recipe.lm.samples_in_report),
        )
        manifest.outputs = {name: name for name in outputs}
        manifest.metrics = dict(result["summary"])
        manifest.metrics.update({f"baseline_{k}": v for k, v in baseline["summary"].items()})
        manifest.counts = {"test": len(rows), "test_scored": len(scored), "test_skipped": skipped}
    return manifest
