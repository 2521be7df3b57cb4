"""Synthetic de-identified rows for drift tests: made-up words, a controllable label mix."""

from __future__ import annotations

import json
import random
from itertools import product

from medops.monitor.sides import Side

CLASSES = ["Acne", "Depression", "Pain"]
USUAL_MIX = (0.5, 0.3, 0.2)
# letters-only made-up words (the report's word counter skips digits)
_SYLLABLES = ["ka", "lo", "mi", "ru", "se", "ta", "vo", "ne", "pi", "du"]
WORDS = ["".join(p) for p in product(_SYLLABLES, repeat=3)]  # 1,000 words
USUAL_WORDS, NEW_WORDS = WORDS[:400], WORDS[600:]


def texts(n: int, seed: int, vocabulary=USUAL_WORDS, words=(20, 40)) -> list[str]:
    """``n`` texts of Zipf-ish word draws, each ``words`` long (inclusive range)."""
    rng = random.Random(seed)
    weights = [1 / (rank + 1) for rank in range(len(vocabulary))]
    return [
        " ".join(rng.choices(vocabulary, weights, k=rng.randint(*words))) + "." for _ in range(n)
    ]


def answers(n: int, seed: int, mix=USUAL_MIX) -> list[str]:
    rng = random.Random(seed)
    labels = rng.choices(CLASSES, mix, k=n)
    return [
        json.dumps({"drug": "Sertraline", "condition": c, "sentiment": "positive"}) for c in labels
    ]


def side(n: int, seed: int, **shift) -> Side:
    """A side as the report builds it: inputs, answers, the answers' label values."""
    vocabulary = shift.get("vocabulary", USUAL_WORDS)
    made = answers(n, seed + 1, shift.get("mix", USUAL_MIX))
    return Side(
        texts(n, seed, vocabulary, shift.get("words", (20, 40))),
        made,
        [json.loads(a)["condition"] for a in made],
    )
