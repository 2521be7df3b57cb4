"""Benchmark: notes per second of medops' de-identification vs stock presidio.

Both run in this one process on the same notes, the demo's 979 real reviews (both TSVs,
cleaned as prepare cleans them): medops as the prepare stage and ``medops data deid``
both run it (``deid_apply.apply_policy``: ``detect_phi`` with every PHI entity incl.
medops' recognizers, the demo recipe's ``deid`` settings, its drug and condition names as
non-PHI vocabulary, then redaction), against presidio's default ``AnalyzerEngine`` and
``AnonymizerEngine`` with the same spaCy model and every default recognizer, one note at
a time as its documentation shows. Both are built and warmed up first, so model loading
is not timed; the two arms alternate (A B A B ...) for ``ROUNDS`` rounds and the median
run of each is reported with every run's rate. Both are scored with
``medops.deid.scoring.score`` on the labelled notes ``bench/deid_recall.py`` uses. Writes
``bench/results/deid_throughput.json`` (``--smoke``: 50 notes, one round, a ``.smoke.json``);
numbers only, never note text.
"""

from __future__ import annotations

import argparse
import csv
import importlib.metadata
import io
import json
import logging
import os
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from presidio_analyzer import AnalyzerEngine, RecognizerResult
from presidio_analyzer.nlp_engine import NlpEngineProvider
from presidio_anonymizer import AnonymizerEngine

from deid_recall import MARKED, NOTES
from medops.assets import read_bytes
from medops.data.clean import clean_text
from medops.deid.detect import detect_phi
from medops.deid.filters import vocabulary
from medops.deid.policy import apply_policy
from medops.deid.scoring import Document, GoldNote, load_i2b2_notes, load_marked_notes, score
from medops.deid.spans import CATEGORY_OF, Detection, Span, merge
from medops.recipe import Recipe, load_recipe

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "condition-demo.yaml"
RESULTS = Path(__file__).parent / "results"
SMOKE_NOTES = 50
ROUNDS = 3  # each arm runs this many times, interleaved; the median is reported
# a warm-up note that reaches every recognizer family (names, dates, e-mail, phone)
WARM_UP = [
    "Seen by Dr. John Smith on March 3, 2021; call 617-555-0142 or mail john@example.com.",
    "I took this for two weeks and my skin cleared up.",
]


def _reviews(recipe: Recipe) -> tuple[list[str], frozenset[str]]:
    """Every review of the demo's two TSVs, cleaned; drug and condition names as known terms.

    Prepare knows only its selected classes as condition names; here every review is
    de-identified, so every condition is.
    """
    texts, terms = [], []
    for source in recipe.data.sources:
        raw = read_bytes(source.uri, source.member).decode("utf-8")
        for row in csv.DictReader(io.StringIO(raw), delimiter="\t"):
            texts.append(clean_text(row[recipe.data.columns.text]))
            terms += [row[column] for column in recipe.deid.keep_terms_from]
            terms.append(row[recipe.data.columns.label])
    return texts, vocabulary([*recipe.deid.keep_terms, *terms])


class _Presidio:
    """presidio as documented: default recognizers, default operators, one note a call."""

    def __init__(self, spacy_model: str) -> None:
        provider = NlpEngineProvider(
            nlp_configuration={
                "nlp_engine_name": "spacy",
                "models": [{"lang_code": "en", "model_name": spacy_model}],
            }
        )
        self.analyzer = AnalyzerEngine(
            nlp_engine=provider.create_engine(), supported_languages=["en"]
        )
        self.anonymizer = AnonymizerEngine()

    def analyze(self, text: str) -> list[RecognizerResult]:
        return self.analyzer.analyze(text, language="en")

    def deidentify(self, texts: Sequence[str]) -> list[str]:
        return [self.anonymizer.anonymize(t, self.analyze(t)).text for t in texts]

    def spans(self, text: str) -> list[Span]:
        found = self.analyze(text)
        return merge(
            Detection(r.start, r.end, CATEGORY_OF.get(r.entity_type, "OTHER"), r.score)
            for r in found
        )


def _timed(run: Callable[[], object], texts: Sequence[str]) -> dict[str, float]:
    started = time.perf_counter()
    run()
    seconds = time.perf_counter() - started
    return {
        "seconds": round(seconds, 3),
        "notes_per_s": round(len(texts) / seconds, 2),
        "chars_per_s": round(sum(map(len, texts)) / seconds, 1),
    }


def _median_run(runs: Sequence[dict[str, float]]) -> dict[str, Any]:
    """The run with the median rate, and every run's rate (the spread)."""
    ordered = sorted(runs, key=lambda run: run["notes_per_s"])
    return {**ordered[len(ordered) // 2], "runs_notes_per_s": [r["notes_per_s"] for r in runs]}


def _cpu_flag(flag: str) -> bool:
    """Whether the CPU advertises ``flag`` (spaCy's and torch's kernels differ with it)."""
    try:
        return flag in Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False


def _quality(
    notes: Sequence[GoldNote], spans: Callable[[Sequence[str]], list[list[Span]]]
) -> dict[str, object]:
    predicted = spans([n.text for n in notes])
    report = score([Document(n.text, n.gold, p) for n, p in zip(notes, predicted, strict=True)])
    return {"gold_spans": sum(len(n.gold) for n in notes), **report["covered"]["overall"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help=f"first {SMOKE_NOTES} notes only")
    args = parser.parse_args()
    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    recipe = load_recipe(RECIPE)
    deid = recipe.deid
    texts, known = _reviews(recipe)
    texts = texts[:SMOKE_NOTES] if args.smoke else texts

    def medops(batch: Sequence[str]) -> list[str]:
        """What prepare and `medops data deid --policy redact` run."""
        return apply_policy(batch, [""] * len(batch), deid, known).texts

    def medops_spans(batch: Sequence[str]) -> list[list[Span]]:
        return detect_phi(batch, deid.spacy_model, "en", deid.score_threshold, known)[0]

    presidio = _Presidio(deid.spacy_model)
    medops(WARM_UP)
    presidio.deidentify(WARM_UP)
    arms: dict[str, Callable[[], object]] = {
        "medops": lambda: medops(texts),
        "presidio": lambda: presidio.deidentify(texts),
    }
    runs: dict[str, list[dict[str, float]]] = {arm: [] for arm in arms}
    for _ in range(1 if args.smoke else ROUNDS):  # A B A B ...: load drifts hit both alike
        for arm, run in arms.items():
            runs[arm].append(_timed(run, texts))
    timings = {arm: _median_run(r) for arm, r in runs.items()}
    rounds = [
        round(ours["notes_per_s"] / theirs["notes_per_s"], 3)
        for ours, theirs in zip(runs["medops"], runs["presidio"], strict=True)
    ]
    gold = {
        "philter_i2b2": load_i2b2_notes(NOTES),
        "medops_en": load_marked_notes(MARKED / "en.txt"),
    }
    quality = {
        name: {
            "medops": _quality(notes, medops_spans),
            "presidio": _quality(notes, lambda batch: [presidio.spans(t) for t in batch]),
        }
        for name, notes in gold.items()
    }
    ratio = timings["medops"]["notes_per_s"] / timings["presidio"]["notes_per_s"]
    result = {
        "benchmark": "deid_throughput",
        "what": "analyse + anonymise the demo's real reviews (model load and warm-up excluded)",
        "notes": len(texts),
        "chars": sum(map(len, texts)),
        "medops": "medops.deid.policy.apply_policy (redact), as prepare and `medops data "
        f"deid` run it: condition-demo recipe deid settings (threshold {deid.score_threshold}), "
        f"{len(known)} known terms",
        "baseline": "presidio AnalyzerEngine + AnonymizerEngine, default recognizers, entities, "
        "threshold and operators, one analyze() per note",
        "spacy_model": deid.spacy_model,
        "rounds": len(rounds),
        "throughput": timings,
        "ratio_medops_over_presidio_notes_per_s": round(ratio, 3),
        "ratio_per_round": rounds,
        "goal_medops_at_least_presidio_speed": ratio >= 1.0,
        "quality_covered": quality,
        "quality_caveat": "medops' rules were written with these notes in view (see "
        "bench/deid_recall.py): a regression check, not an unbiased recall estimate",
        "machine": {
            "python": platform.python_version(),
            "processor": platform.machine(),
            "cpus": os.cpu_count(),
            "avx512": _cpu_flag("avx512f"),
            "load_average_1m_at_end": round(os.getloadavg()[0], 2),
            "presidio_analyzer": importlib.metadata.version("presidio-analyzer"),
            "spacy": importlib.metadata.version("spacy"),
        },
    }
    out = RESULTS / ("deid_throughput.smoke.json" if args.smoke else "deid_throughput.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
