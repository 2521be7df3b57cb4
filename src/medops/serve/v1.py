"""KServe v1 protocol codec: ``{"instances": [...]}`` in, ``{"predictions": [...]}`` out.

An instance is either a string or ``{"text": str}``. Errors say what is expected and where
(instance index) but never repeat submitted text: requests may carry patient narrative.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from typing import Any

import numpy as np
from kserve.errors import InvalidInput

EXPECTED = 'expected {"instances": [{"text": "..."}, ...]} or {"instances": ["...", ...]}'

# one fixed, record-free text for the served OpenAPI document's examples
EXAMPLE_TEXT = "I have had a rash on my face for two weeks."
EXAMPLE = {"instances": [{"text": EXAMPLE_TEXT}]}

_TEXT = {"type": "string", "minLength": 1}
REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["instances"],
    "properties": {
        "instances": {
            "type": "array",
            "minItems": 1,
            "items": {
                "anyOf": [
                    _TEXT,
                    {"type": "object", "required": ["text"], "properties": {"text": _TEXT}},
                ]
            },
        }
    },
}

# invisible characters outside category Cf that Unicode marks default-ignorable
# (combining grapheme joiner, Hangul fillers, Khmer vowel inherents, variation selectors)
_IGNORABLE = frozenset(
    (
        *(0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x3164, 0xFFA0),
        *range(0x180B, 0x1810),
        *range(0xFE00, 0xFE10),
        *range(0xE0100, 0xE01F0),
    )
)
_BLANK_CATEGORIES = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})


def is_blank(text: str) -> bool:
    """True when nothing in ``text`` is visible: whitespace, controls, format characters
    (zero-width space, BOM, ...) and other default-ignorables only. A model would classify
    such an input as confidently as a real one, so it is refused as empty."""
    return all(
        char.isspace() or unicodedata.category(char) in _BLANK_CATEGORIES or ord(char) in _IGNORABLE
        for char in text
    )


def decode(body: Any) -> list[str]:
    """Return the texts of a v1 request body, or raise InvalidInput."""
    if not isinstance(body, dict):
        raise InvalidInput(f"{EXPECTED}; the body is not a JSON object (Content-Type JSON?)")
    if "instances" not in body:
        raise InvalidInput(f"{EXPECTED}; the body has no 'instances' key")
    instances = body["instances"]
    if not isinstance(instances, list) or not instances:
        raise InvalidInput(f"{EXPECTED}; 'instances' must be a non-empty list")
    return [_text(instance, index) for index, instance in enumerate(instances)]


def entities(body: dict[str, Any], key: str) -> list[str | None]:
    """Each instance's entity id under ``key`` (``{"text": ..., "drug": "Zoloft"}``), None
    where an instance names none; ``decode`` has already checked the body's shape."""
    ids: list[str | None] = []
    for index, instance in enumerate(body["instances"]):
        value = instance.get(key) if isinstance(instance, dict) else None
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise InvalidInput(
                f"instance {index}: {key!r} must be a non-empty string (the id whose features "
                "the model reads), or left out"
            )
        ids.append(value.strip() if value is not None else None)
    return ids


def _text(instance: Any, index: int) -> str:
    text = instance.get("text") if isinstance(instance, dict) else instance
    if not isinstance(text, str):
        raise InvalidInput(f"{EXPECTED}; instance {index} has no string text")
    if is_blank(text):
        raise InvalidInput(
            f"{EXPECTED}; instance {index} has empty text (only whitespace or invisible characters)"
        )
    return text


def encode(
    labels: Sequence[str],
    classes: Sequence[str],
    probabilities: np.ndarray,
    context: Sequence[str] | None = None,
) -> dict:
    """One ``{"condition", "probabilities": {class: p}}`` per instance, in request order;
    with ``context`` (a model that reads features) each also says what was known of its
    entity: ``found``, ``unknown id`` or ``no id``."""
    predictions: list[dict[str, Any]] = [
        {
            "condition": label,
            "probabilities": {name: float(p) for name, p in zip(classes, row, strict=True)},
        }
        for label, row in zip(labels, probabilities, strict=True)
    ]
    for prediction, status in zip(predictions, context or (), strict=False):
        prediction["context"] = status
    return {"predictions": predictions}
