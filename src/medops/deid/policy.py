"""Apply a de-identification policy to texts: what ``medops data deid`` and prepare share.

One path for both, so the recall measured on the labelled sets (``detect_phi``) is the
recall of the prepared datasets: each text is routed to its language's engine, its PHI
spans are found in the original offsets, and the policy rewrites them (``redact``: typed
``[CATEGORY]`` tags; ``pseudonymize``: keyed surrogates, dates shifted per patient).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from medops.deid.detect import detect_phi
from medops.deid.language import guess_language
from medops.deid.pseudonyms import Pseudonymizer
from medops.deid.spans import Span, redact
from medops.errors import ConfigurationError
from medops.recipe import Deid

LANGUAGE_CHOICES = ("en", "fr", "auto")
POLICIES = ("redact", "pseudonymize")


@dataclass
class Applied:
    """Rewritten texts, their spans and languages, and counts that never hold text."""

    texts: list[str] = field(default_factory=list)
    spans: list[list[Span]] = field(default_factory=list)
    languages: list[str] = field(default_factory=list)
    dropped: Counter[str] = field(default_factory=Counter)
    dates_redacted: int = 0

    def only(self, keep: Sequence[bool]) -> Applied:
        """The texts where ``keep`` is true (a later stage step dropped the others); the
        filter and date counts stay those of the whole call."""
        pick = [i for i, wanted in enumerate(keep) if wanted]
        return Applied(
            [self.texts[i] for i in pick],
            [self.spans[i] for i in pick],
            [self.languages[i] for i in pick],
            self.dropped,
            self.dates_redacted,
        )


def check_choices(language: str, policy: str, pseudonymizer: Pseudonymizer | None) -> None:
    if language not in LANGUAGE_CHOICES:
        raise ConfigurationError(
            f"language {language!r}: choose one of {', '.join(LANGUAGE_CHOICES)}"
        )
    if policy not in POLICIES:
        raise ConfigurationError(f"policy {policy!r}: supported policies are {', '.join(POLICIES)}")
    if policy == "pseudonymize" and pseudonymizer is None:
        raise ConfigurationError("policy 'pseudonymize' needs a key (see medops.deid.pseudonyms)")


def _detect(
    texts: Sequence[str], language: str, deid: Deid, known: frozenset[str], applied: Applied
) -> None:
    """Spans per text, one engine call per language present."""
    languages = [guess_language(t) if language == "auto" else language for t in texts]
    spans: list[list[Span]] = [[] for _ in texts]
    for lang in sorted(set(languages)):
        picked = [i for i, lg in enumerate(languages) if lg == lang]
        model = deid.spacy_model_fr if lang == "fr" else deid.spacy_model
        found, dropped = detect_phi(
            [texts[i] for i in picked], model, lang, deid.score_threshold, known
        )
        for i, text_spans in zip(picked, found, strict=True):
            spans[i] = text_spans
        applied.dropped.update(dropped)
    applied.spans, applied.languages = spans, languages


def apply_policy(
    texts: Sequence[str],
    patients: Sequence[str],
    deid: Deid,
    known: frozenset[str],
    language: str = "en",
    pseudonymizer: Pseudonymizer | None = None,
) -> Applied:
    """De-identify ``texts``: redact, or pseudonymize when a ``pseudonymizer`` is given.

    ``patients[i]`` keys the date shift of ``texts[i]`` (pseudonymize), so intervals
    between one patient's dates survive; ``known`` is non-PHI vocabulary
    (``phi_filters.vocabulary``).
    """
    applied = Applied()
    if not texts:
        return applied
    if deid.policy == "none":  # declared free of patient information (deid.no_phi_reason)
        return Applied(list(texts), [[] for _ in texts], [language] * len(texts))
    _detect(texts, language, deid, known, applied)
    for text, spans, lang, patient in zip(
        texts, applied.spans, applied.languages, patients, strict=True
    ):
        if pseudonymizer is None:
            applied.texts.append(redact(text, spans))
            continue
        rewritten, unparsed = pseudonymizer.apply(text, spans, patient, dayfirst=lang == "fr")
        applied.texts.append(rewritten)
        applied.dates_redacted += unparsed
    return applied
