"""KServe v1 protocol codec: ``{"instances": [...]}`` in, ``{"predictions": [...]}`` out.

An instance is either a string or ``{"text": str}``. Errors say what is expected and where
(instance index) but never repeat submitted text: requests may carry patient narrative.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from kserve.errors import InvalidInput

EXPECTED = 'expected {"instances": [{"text": "..."}, ...]} or {"instances": ["...", ...]}'


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


def _text(instance: Any, index: int) -> str:
    text = instance.get("text") if isinstance(instance, dict) else instance
    if not isinstance(text, str):
        raise InvalidInput(f"{EXPECTED}; instance {index} has no string text")
    if not text.strip():
        raise InvalidInput(f"{EXPECTED}; instance {index} has empty text")
    return text


def encode(labels: Sequence[str], classes: Sequence[str], probabilities: np.ndarray) -> dict:
    """One ``{"condition", "probabilities": {class: p}}`` per instance, in request order."""
    return {
        "predictions": [
            {
                "condition": label,
                "probabilities": {name: float(p) for name, p in zip(classes, row, strict=True)},
            }
            for label, row in zip(labels, probabilities, strict=True)
        ]
    }
