"""Metrics for generated JSON answers, so the tuned and the base model are scored the same way.

The fine-tuned causal LM is asked to turn review text into a JSON object; the untuned base model
often wraps that object in prose or code fences, or misses it. These pure functions turn raw
generations into comparable numbers: JSON validity, per-field exact match and token F1, a
free-text ROUGE-L, and classification metrics for the one field that is a closed label set.
Error messages name counts, rows and keys only, never the text, which can be patient text.
"""

from __future__ import annotations

import functools
import json
import re
import string
from collections import Counter
from typing import Any

from rouge_score import rouge_scorer, tokenizers

from medops.evaluate.metrics import classification_metrics

INVALID_LABEL = "<invalid>"
# the label field's classification metrics, reported as ``<label_field>_<name>``
LABEL_METRICS = ("macro_f1", "micro_f1", "macro_precision", "macro_recall", "accuracy")

_FENCE = re.compile(r"^```[^\n]*\n(.*?)\n?```$", re.DOTALL)
_WORD = re.compile(r"[^\W_]+")
_SURROUNDING = string.punctuation + "«»“”‘’„…" + " "
_DECODER = json.JSONDecoder()


def _as_text(value: Any) -> str:
    """Compare every value as text: the gold side is text, and JSON null means "no answer"."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _answer(obj: Any) -> dict[str, str] | None:
    """Keep only objects: a list or a bare string is not an answer."""
    if not isinstance(obj, dict):
        return None
    return {key: _as_text(value) for key, value in obj.items()}


def parse_answer(text: str) -> dict[str, str] | None:
    """The first JSON object in a generation, since models wrap their JSON in prose or fences."""
    stripped = text.strip()
    fenced = _FENCE.match(stripped)
    body = fenced.group(1).strip() if fenced else stripped
    try:
        return _answer(json.loads(body))
    except json.JSONDecodeError:
        pass
    for start, char in enumerate(body):
        if char != "{":
            continue
        try:
            obj, _ = _DECODER.raw_decode(body, start)
        except json.JSONDecodeError:
            continue
        return _answer(obj)
    return None


def normalise(value: str) -> str:
    """Fold case, spacing and surrounding punctuation so "Lexapro." matches "lexapro"."""
    return " ".join(value.casefold().split()).strip(_SURROUNDING)


def _tokens(text: str) -> list[str]:
    """Casefolded letter/digit runs; Unicode-aware, so French accents survive tokenisation."""
    return _WORD.findall(text.casefold())


def token_f1(predicted: str, gold: str) -> float:
    """SQuAD-style token F1: partial credit for "depression" against "major depression"."""
    pred_tokens, gold_tokens = _tokens(normalise(predicted)), _tokens(normalise(gold))
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)
    common = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred_tokens), common / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


class _UnicodeTokenizer(tokenizers.Tokenizer):
    """rouge_score's default tokenizer keeps only [a-z0-9], turning "fièvre" into "fi vre"."""

    def tokenize(self, text: str) -> list[str]:
        return _tokens(text)


@functools.cache
def _rouge_scorer() -> rouge_scorer.RougeScorer:
    """Build the scorer once; it is stateless and reused for every row."""
    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False, tokenizer=_UnicodeTokenizer())


def rouge_l(predicted: str, gold: str) -> float:
    """ROUGE-L F-measure: a free-text score that still credits answers with broken JSON."""
    return float(_rouge_scorer().score(gold, predicted)["rougeL"].fmeasure)


def _label_lookup(classes: list[str]) -> dict[str, str]:
    """Map each class's normalised form back to the class, refusing classes that collide."""
    lookup = {normalise(name): name for name in classes}
    if len(lookup) != len(classes):
        raise ValueError(f"{len(classes)} classes but only {len(lookup)} distinct after normalise")
    return lookup


def _validate(
    generations: list[str],
    golds: list[dict[str, str]],
    fields: list[str],
    label_field: str | None,
    classes: list[str] | None,
) -> dict[str, str] | None:
    """Refuse inputs that would give misleading numbers; name counts, rows and keys only.

    Returns the normalised-class lookup when a label field is scored.
    """
    if len(generations) != len(golds):
        raise ValueError(f"{len(generations)} generations but {len(golds)} gold answers")
    if not generations:
        raise ValueError("no rows to evaluate: there are no generations")
    if not fields:
        raise ValueError("no fields to score: fields is empty")
    for row, gold in enumerate(golds):
        missing = [field for field in fields if field not in gold]
        if missing:
            raise ValueError(f"gold answer of row {row} lacks field(s) {missing}")
    if label_field is None:
        return None
    if not classes:
        raise ValueError(f"label field {label_field!r} needs a non-empty classes list")
    if label_field not in fields:
        raise ValueError(f"label field {label_field!r} is not one of the scored fields")
    lookup = _label_lookup(classes)
    for row, gold in enumerate(golds):
        if normalise(gold[label_field]) not in lookup:
            raise ValueError(
                f"gold {label_field!r} of row {row} is not one of the {len(classes)} classes"
            )
    return lookup


def _label_pairs(
    parsed: list[dict[str, str] | None],
    golds: list[dict[str, str]],
    label_field: str,
    lookup: dict[str, str],
) -> tuple[list[str], list[str]]:
    """Gold class and answered class of each row; an unmatched answer is ``INVALID_LABEL``."""
    y_true = [lookup[normalise(gold[label_field])] for gold in golds]
    y_pred = [
        INVALID_LABEL
        if answer is None or label_field not in answer
        else lookup.get(normalise(answer[label_field]), INVALID_LABEL)
        for answer in parsed
    ]
    return y_true, y_pred


def label_pairs(
    generations: list[str], golds: list[dict[str, str]], label_field: str, classes: list[str]
) -> tuple[list[str], list[str]]:
    """Gold and answered class of each row, as :func:`extraction_metrics` scores them."""
    _validate(generations, golds, [label_field], label_field, classes)
    parsed = [parse_answer(text) for text in generations]
    return _label_pairs(parsed, golds, label_field, _label_lookup(classes))


def _label_metrics(
    parsed: list[dict[str, str] | None],
    golds: list[dict[str, str]],
    label_field: str,
    lookup: dict[str, str],
) -> tuple[dict[str, float], dict[str, dict[str, float]], list[list[int]]]:
    """Classification metrics on the label field; an unmatched answer is wrong for every class.

    The confusion matrix has one extra last column (and row) for ``INVALID_LABEL``.
    """
    y_true, y_pred = _label_pairs(parsed, golds, label_field, lookup)
    result = classification_metrics(y_true, y_pred, list(lookup.values()))
    summary = {f"{label_field}_{name}": result["summary"][name] for name in LABEL_METRICS}
    labels = [*lookup.values(), INVALID_LABEL]
    confusion = classification_metrics(y_true, y_pred, labels)["confusion"]
    return summary, result["per_class"], confusion


def row_scores(
    generations: list[str],
    parsed: list[dict[str, str] | None],
    golds: list[dict[str, str]],
    fields: list[str],
) -> dict[str, list[float]]:
    """Per-row values whose means are :func:`extraction_metrics`' rates, kept per row so
    they can be bootstrapped and sliced."""
    scores: dict[str, list[float]] = {
        "json_validity": [float(answer is not None) for answer in parsed],
        "field_coverage": [
            float(answer is not None and all(f in answer for f in fields)) for answer in parsed
        ],
    }
    all_match = [True] * len(parsed)
    for field in fields:
        matches: list[bool] = []
        f1s: list[float] = []
        for answer, gold in zip(parsed, golds, strict=True):
            if answer is None or field not in answer:
                matches.append(False)
                f1s.append(0.0)
                continue
            matches.append(normalise(answer[field]) == normalise(gold[field]))
            f1s.append(token_f1(answer[field], gold[field]))
        all_match = [both and match for both, match in zip(all_match, matches, strict=True)]
        scores[f"exact_match_{field}"] = [float(match) for match in matches]
        scores[f"token_f1_{field}"] = f1s
    scores["exact_match_all"] = [float(match) for match in all_match]
    scores["rouge_l"] = [
        rouge_l(text, json.dumps(gold, ensure_ascii=False))
        for text, gold in zip(generations, golds, strict=True)
    ]
    return scores


def extraction_metrics(
    generations: list[str],
    golds: list[dict[str, str]],
    fields: list[str],
    label_field: str | None,
    classes: list[str] | None,
) -> dict[str, Any]:
    """Score generations against gold answers: JSON validity, per-field match, ROUGE-L, labels."""
    lookup = _validate(generations, golds, fields, label_field, classes)
    rows = len(generations)
    parsed = [parse_answer(text) for text in generations]
    summary = {
        name: sum(values) / rows
        for name, values in row_scores(generations, parsed, golds, fields).items()
    }
    per_class: dict[str, dict[str, float]] = {}
    confusion: list[list[int]] = []
    if label_field is not None and lookup is not None:
        label_summary, per_class, confusion = _label_metrics(parsed, golds, label_field, lookup)
        summary.update(label_summary)
    return {
        "summary": summary,
        "per_class": per_class,
        "confusion": confusion,
        "counts": {"rows": rows, "invalid_json": sum(answer is None for answer in parsed)},
    }
