"""Per-example scores and bootstrap intervals for free-text chat answers, tuned against base.

An instruction/chat fine-tune answers in prose, so there is no JSON to validate: each final
assistant turn is scored against its reference with the same text measures the extraction
task uses (ROUGE-L, normalised exact match, token F1), plus its length and whether it is
empty or a refusal. Test sets are small, so a bare mean hides how much of a tuned-minus-base
gap is noise: every summary number carries a percentile bootstrap interval, and the
comparison resamples the per-example differences (paired), because both models answered the
same prompts. Outputs are flat ``{name: float}`` dicts, ready for MLflow. Error messages name
counts and score names only, never the text, which can be patient text.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from medops.evaluate.generation_metrics import normalise, rouge_l, token_f1
from medops.evaluate.intervals import bootstrap_ci, paired_difference_ci

SCORE_NAMES = ("rouge_l", "exact_match", "token_f1", "answer_chars", "empty_or_refusal")

# Openers that start a refusal rather than an answer, English and French, matched after
# stripping, casefolding and straightening apostrophes, and only as whole words. Kept short on
# purpose: a sympathetic "I'm sorry to hear that..." before a real answer must not count.
REFUSAL_OPENERS = (
    "i'm sorry, but i can't",
    "i'm sorry, but i cannot",
    "i am sorry, but i can't",
    "i am sorry, but i cannot",
    "i'm sorry, i can't",
    "i'm sorry, i cannot",
    "i cannot",
    "i can't help",
    "i can't provide",
    "i can't assist",
    "i'm unable to",
    "i am unable to",
    "as an ai",
    "as a language model",
    "je ne peux pas",
    "je ne suis pas en mesure de",
    "désolé",
    "désolée",
    "je suis désolé, mais",
    "je suis désolée, mais",
    "en tant qu'ia",
    "en tant qu'intelligence artificielle",
    "en tant que modèle de langage",
)
_REFUSAL = re.compile(
    "^(?:"
    + "|".join(re.escape(opener) for opener in sorted(REFUSAL_OPENERS, key=len, reverse=True))
    + r")(?![^\W_])"
)
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'"})


def is_empty_or_refusal(text: str) -> bool:
    """True for an empty answer or one that opens with a known refusal phrase.

    A heuristic, deliberately conservative: it only looks at the opening words, so a refusal
    phrased any other way is missed rather than a real answer being counted as a refusal.
    """
    folded = unicodedata.normalize("NFC", text).strip().casefold().translate(_APOSTROPHES)
    return not folded or _REFUSAL.match(folded) is not None


def score_answers(predictions: Sequence[str], references: Sequence[str]) -> dict[str, list[float]]:
    """Per-example scores of each final assistant turn, kept per row so they can be bootstrapped.

    ``answer_chars`` is the stripped prediction's length (trailing newlines from decoding are
    not answer); ``empty_or_refusal`` is 1.0 where :func:`is_empty_or_refusal` holds.
    """
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    if not predictions:
        raise ValueError("no answers to score: predictions and references are empty")
    scores: dict[str, list[float]] = {name: [] for name in SCORE_NAMES}
    for predicted, reference in zip(predictions, references, strict=True):
        scores["rouge_l"].append(rouge_l(predicted, reference))
        scores["exact_match"].append(float(normalise(predicted) == normalise(reference)))
        scores["token_f1"].append(token_f1(predicted, reference))
        scores["answer_chars"].append(float(len(predicted.strip())))
        scores["empty_or_refusal"].append(float(is_empty_or_refusal(predicted)))
    return scores


def summarise(
    scores: dict[str, list[float]],
    prefix: str = "",
    *,
    resamples: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, float]:
    """Flat MLflow metrics: each score's mean as ``{prefix}{name}``, plus ``_ci_low``/``_ci_high``.

    One call per model side; the prefix (e.g. ``baseline_``) keeps the sides apart in one run.
    """
    metrics: dict[str, float] = {}
    for name, values in scores.items():
        mean, low, high = bootstrap_ci(values, resamples=resamples, seed=seed, level=level)
        metrics[f"{prefix}{name}"] = mean
        metrics[f"{prefix}{name}_ci_low"] = low
        metrics[f"{prefix}{name}_ci_high"] = high
    return metrics


def compare(
    tuned: dict[str, list[float]],
    base: dict[str, list[float]],
    *,
    resamples: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, float]:
    """Tuned minus base for every score both sides have: ``{name}_diff`` and its paired interval.

    An interval above zero says fine-tuning helped on that score beyond resampling noise (for
    ``answer_chars`` and ``empty_or_refusal``, "above zero" means longer and more refusals).
    """
    shared = [name for name in tuned if name in base]
    if not shared:
        raise ValueError(
            f"no score names in common: tuned has {sorted(tuned)}, base has {sorted(base)}"
        )
    metrics: dict[str, float] = {}
    for name in shared:
        if len(tuned[name]) != len(base[name]):
            raise ValueError(
                f"score {name!r}: {len(tuned[name])} tuned values but {len(base[name])} base values"
            )
        diff, low, high = paired_difference_ci(
            tuned[name], base[name], resamples=resamples, seed=seed, level=level
        )
        metrics[f"{name}_diff"] = diff
        metrics[f"{name}_diff_ci_low"] = low
        metrics[f"{name}_diff_ci_high"] = high
    return metrics
