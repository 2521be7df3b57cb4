"""A learned recognizer: logistic regression over capitalised runs (``span_candidates``).

Trained by ``scripts/train_span_classifier.py`` on the development halves of the labelled
notes, with the development half of the ICD-10 descriptions as PHI-free negatives; the
weights ship as ``span_classifier.json`` (numbers and feature names, nothing executable).
Chosen on development data only: trained without the third blind batch, it raised that
batch's development recall from 0.846 to 0.920 (precision 0.867 to 0.855; docs/deid.md).
Its spans go through the same filters as spaCy's.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from presidio_analyzer import LocalRecognizer, RecognizerResult
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LogisticRegression

from medops.deid.span_candidates import candidates, features, tokens

WEIGHTS = Path(__file__).with_name("span_classifier.json")
RECOGNIZER = "SpanClassifierRecognizer"
OUTSIDE = "O"  # the class of a run that is no PHI
THRESHOLD = 0.5  # 1 - P(outside) to report a run; chosen on development data (0.5-0.8 tried)
# a run's predicted category onto the entity names the filters and ``spans`` know
ENTITY_OF = {
    "NAME": "PERSON",
    "LOCATION": "LOCATION",
    "ORGANIZATION": "ORGANIZATION",
    "DATE": "DATE_TIME",
    "ID": "ID",
}
DECIMALS = 4
# a date or an identifier the rules missed still holds a digit; a capitalised word alone
# that the model calls a date is a month name used as a word ("May", "Mars")
_NEEDS_DIGIT = frozenset({"DATE_TIME", "ID"})


@dataclass(frozen=True)
class Weights:
    """A multinomial logistic regression: per feature, one weight per class."""

    classes: tuple[str, ...]
    intercept: tuple[float, ...]
    coef: dict[str, tuple[float, ...]]

    def probabilities(self, found: dict[str, int]) -> list[float]:
        logits = list(self.intercept)
        for name in found:
            for k, weight in enumerate(self.coef.get(name, ())):
                logits[k] += weight
        top = max(logits)
        exp = [math.exp(logit - top) for logit in logits]
        total = sum(exp)
        return [value / total for value in exp]

    def to_json(self) -> str:
        return json.dumps(
            {"classes": self.classes, "intercept": self.intercept, "coef": self.coef},
            sort_keys=True,
            indent=0,
        )


def fit(rows: Sequence[dict[str, int]], labels: Sequence[str]) -> Weights:
    """sklearn's logistic regression (lbfgs, deterministic), its weights rounded."""
    vectorizer = DictVectorizer()
    model = LogisticRegression(max_iter=3000)
    model.fit(vectorizer.fit_transform(rows), labels)
    names = vectorizer.get_feature_names_out()
    coef, intercept = model.coef_, model.intercept_
    if len(model.classes_) == 2:  # one logit for the second class: softmax over (0, it)
        coef = np.vstack([np.zeros_like(coef), coef])
        intercept = np.concatenate([[0.0], intercept])
    return Weights(
        tuple(str(c) for c in model.classes_),
        tuple(round(float(b), DECIMALS) for b in intercept),
        {
            str(name): tuple(round(float(w), DECIMALS) for w in coef[:, column])
            for column, name in enumerate(names)
        },
    )


@functools.cache
def load_weights(path: Path = WEIGHTS) -> Weights:
    data = json.loads(path.read_text(encoding="utf-8"))
    return Weights(
        tuple(data["classes"]),
        tuple(data["intercept"]),
        {name: tuple(values) for name, values in data["coef"].items()},
    )


class SpanClassifierRecognizer(LocalRecognizer):
    """Reports each capitalised run the model gives at least ``THRESHOLD`` of being PHI,
    as its most likely category."""

    name: str  # set by EntityRecognizer.__init__, which mypy cannot infer a type from

    def __init__(self, language: str, weights: Weights | None = None) -> None:
        self._weights = weights or load_weights()
        super().__init__(
            supported_entities=sorted(set(ENTITY_OF.values())),
            name=RECOGNIZER,
            supported_language=language,
        )

    def load(self) -> None:
        """Nothing to load: the weights are read once per process."""

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: object = None
    ) -> list[RecognizerResult]:
        weights, language = self._weights, self.supported_language
        outside = weights.classes.index(OUTSIDE)
        toks = tokens(text)
        results = []
        for candidate in candidates(text, toks):
            probabilities = weights.probabilities(features(text, toks, candidate, language))
            phi = 1.0 - probabilities[outside]
            if phi < THRESHOLD:
                continue
            best = max(
                (k for k in range(len(weights.classes)) if k != outside),
                key=probabilities.__getitem__,
            )
            entity = ENTITY_OF.get(weights.classes[best])
            numbered = any(ch.isdigit() for ch in text[candidate.start : candidate.end])
            if entity in _NEEDS_DIGIT and not numbered:  # "May present as ...": a verb
                continue
            if entity in entities:
                results.append(
                    RecognizerResult(
                        entity,
                        candidate.start,
                        candidate.end,
                        round(phi, 3),
                        recognition_metadata={
                            RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
                            RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
                        },
                    )
                )
        return results
