"""Regurgitation probe: prompt with training conversations' openings, scan what comes back.

A probe is a training conversation without its final answer, exactly what the model saw
before the text it was trained to produce. Its greedy generation is scanned for
identifiers of the training set (the planted canaries' secrets and any MRN-, phone- or
date-shaped string in the training text) and for long verbatim overlaps with any training
text. What a generation copies from its own prompt is neither: echoing the input is not
recalling the training set. Only counts leave this module.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from medops.model.generate import generate
from medops.privacy.canaries import IDENTIFIER, Canary, Conversation
from medops.recipe import Regurgitation


@dataclass(frozen=True)
class RegurgitationCounts:
    probes: int
    identifiers_in_training: int  # distinct identifier-shaped strings and canary secrets
    generations_with_identifier: int  # a training identifier its prompt did not hold
    generations_with_overlap: int  # overlap_words consecutive words of a training text
    canaries_emitted: int  # planted secrets found in any generation

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def _text(conversation: Conversation) -> str:
    return "\n".join(turn["content"] for turn in conversation)


def _grams(text: str, n: int) -> set[tuple[str, ...]]:
    words = text.split()
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def training_identifiers(texts: Iterable[str], canaries: Sequence[Canary]) -> set[str]:
    found = {match.group() for text in texts for match in IDENTIFIER.finditer(text)}
    return found | {canary.secret for canary in canaries}


def scan(
    generations: Sequence[str],
    prompts: Sequence[str],
    training: Sequence[str],
    canaries: Sequence[Canary],
    overlap_words: int,
) -> RegurgitationCounts:
    """Counts over ``generations``, each answering the prompt at the same index."""
    identifiers = training_identifiers(training, canaries)
    training_grams = set().union(*(_grams(text, overlap_words) for text in training))
    with_identifier = with_overlap = 0
    for generation, prompt in zip(generations, prompts, strict=True):
        recalled = {i for i in identifiers if i in generation and i not in prompt}
        with_identifier += bool(recalled)
        copied = _grams(generation, overlap_words) & training_grams
        with_overlap += bool(copied - _grams(prompt, overlap_words))
    emitted = sum(any(c.secret in g for g in generations) for c in canaries)
    return RegurgitationCounts(
        len(generations), len(identifiers), with_identifier, with_overlap, emitted
    )


def probe(
    model: Any,
    tokenizer: Any,
    conversations: Sequence[Conversation],
    canaries: Sequence[Canary],
    settings: Regurgitation,
    seed: int,
    batch_size: int,
) -> RegurgitationCounts:
    """Generate from ``settings.probes`` training conversations (a seeded sample) and from
    every canary, then scan against all training text, canaries included."""
    sample = random.Random(seed).sample(  # noqa: S311 - a reproducible sample, not a secret
        list(conversations), min(settings.probes, len(conversations))
    )
    probed = [*sample, *(canary.conversation() for canary in canaries)]
    prompts = [conversation[:-1] for conversation in probed]
    generations = generate(
        model, tokenizer, prompts, settings.max_new_tokens, batch_size, label="privacy probe"
    )
    training = [_text(c) for c in [*conversations, *(c.conversation() for c in canaries)]]
    return scan(
        generations, [_text(p) for p in prompts], training, canaries, settings.overlap_words
    )
