"""Canaries: reproducible from the seed, obviously fake, never among their references, and
planted into the training examples only."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from medops.model.causal_lm import load_tokenizer
from medops.model.chat import IGNORE
from medops.privacy.canaries import canary_examples, make_canaries, references
from medops.recipe import Canaries, PrivacyAudit
from medops.tasks.causal_lm.loop import planted

FAKE = {
    "mrn": r"ZZ\d{7}",
    "phone": r"555-\d{3}-\d{4}",
    "name_date": r"[A-Z][a-z]+ [A-Z][a-z]+, born 18\d\d-\d\d-\d\d",
}


def test_the_same_seed_gives_the_same_fake_canaries_formats_in_turn() -> None:
    settings = Canaries(count=7)
    canaries = make_canaries(settings, seed=13)
    assert canaries == make_canaries(settings, seed=13), "every Ray worker rebuilds the same"
    assert [c.secret for c in canaries] != [c.secret for c in make_canaries(settings, seed=14)]
    assert [c.format for c in canaries] == ["mrn", "phone", "name_date"] * 2 + ["mrn"]
    assert [c.label for c in canaries][:2] == ["mrn-0", "phone-1"]
    for canary in canaries:
        assert re.fullmatch(FAKE[canary.format], canary.secret), canary.format
        assert canary.secret in canary.conversation()[-1]["content"]
    assert len({c.secret for c in canaries}) == len(canaries)


@pytest.mark.parametrize("kind", ["mrn", "phone", "name_date"])
def test_references_are_distinct_unplanted_candidates_of_the_format(kind: str) -> None:
    canaries = make_canaries(Canaries(count=3), seed=13)
    found = references(kind, 300, 13, canaries)  # type: ignore[arg-type]
    assert len(set(found)) == 300
    assert not set(found) & {c.secret for c in canaries}
    assert all(re.fullmatch(FAKE[kind], secret) for secret in found)


def test_planted_examples_train_on_the_secret(tiny_lm_dir: Path) -> None:
    tokenizer = load_tokenizer(str(tiny_lm_dir))
    settings = PrivacyAudit(canaries=Canaries(count=2, repeats=3))
    examples = planted(settings.model_dump(mode="json"), 13, tokenizer)
    assert len(examples) == 6 and planted(None, 13, tokenizer) == []
    [first, *_] = make_canaries(settings.canaries, 13)
    answer = tokenizer.decode([t for t in examples[0].labels if t != IGNORE])
    assert first.secret in answer, "the loss covers the secret"
    assert examples == canary_examples(make_canaries(settings.canaries, 13), 3, tokenizer)
