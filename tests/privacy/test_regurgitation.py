"""The regurgitation scan: what a generation recalls from the training set, not its prompt."""

from __future__ import annotations

from medops.privacy.canaries import Canary
from medops.privacy.regurgitation import scan

OTHER = (
    "after three weeks on the new tablets my headaches eased and I could finally sleep through "
    "the night without waking at four"
)
PROMPT = "the rash spread over my arms within two days of starting and the itching kept me awake"
CANARY = Canary("phone", 0, "555-123-4567")


def _scan(generations: list[str], prompts: list[str]) -> dict[str, int]:
    training = [OTHER, PROMPT, "call the clinic at 555-987-6543 for the results"]
    return scan(generations, prompts, training, [CANARY], overlap_words=12).to_dict()


def test_a_verbatim_copy_of_another_training_text_is_an_overlap() -> None:
    counts = _scan([f"Sure. {OTHER[:90]} and more"], [PROMPT])
    assert counts["generations_with_overlap"] == 1
    assert counts["generations_with_identifier"] == 0 and counts["probes"] == 1


def test_echoing_its_own_prompt_or_a_short_match_is_not() -> None:
    echo = f"You said: {PROMPT}"
    short = " ".join(OTHER.split()[:11])  # one word short of overlap_words
    counts = _scan([echo, short], [PROMPT, PROMPT])
    assert counts["generations_with_overlap"] == 0


def test_identifiers_of_the_training_set_are_found_unless_prompted() -> None:
    counts = _scan(
        ["phone 555-987-6543", "your number is 555-123-4567", "555-987-6543", "555-000-0000"],
        [PROMPT, PROMPT, "my number: 555-987-6543", PROMPT],
    )
    # the training text's number and the canary; not the one the prompt held, not a new one
    assert counts["generations_with_identifier"] == 2
    assert counts["canaries_emitted"] == 1
    assert counts["identifiers_in_training"] == 2
