"""Small HTTP helpers for the demo and tests: wait for readiness, call v1 and v2.

httpx only (no kserve import), so a client process stays light.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import httpx

from medops.errors import MedopsError


class PredictError(MedopsError, RuntimeError):
    """The server answered with an error status; the message carries its error text."""


def wait_ready(base_url: str, model_name: str, timeout_s: float = 60.0) -> None:
    """Poll ``GET /v1/models/<name>`` until it reports ready, or raise TimeoutError."""
    url = f"{base_url.rstrip('/')}/v1/models/{model_name}"
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while True:
        try:
            response = httpx.get(url, timeout=2.0)
            if response.status_code == 200 and response.json().get("ready") is True:
                return
            last = f"HTTP {response.status_code}"
        except httpx.TransportError as error:
            last = type(error).__name__
        if time.monotonic() >= deadline:
            raise TimeoutError(
                f"model {model_name!r} at {base_url} not ready after {timeout_s:g}s "
                f"(last answer: {last})"
            )
        time.sleep(0.2)


def predict_v1(
    base_url: str, model_name: str, texts: Sequence[str], timeout_s: float = 30.0
) -> dict[str, Any]:
    """``{"predictions": [{"condition", "probabilities"}, ...]}`` for ``texts``."""
    body = {"instances": [{"text": text} for text in texts]}
    return _post(f"{base_url.rstrip('/')}/v1/models/{model_name}:predict", body, timeout_s)


def predict_v2(
    base_url: str, model_name: str, texts: Sequence[str], timeout_s: float = 30.0
) -> dict[str, Any]:
    """The v2 response body: outputs ``condition``, ``probabilities`` and ``classes``."""
    body = {
        "inputs": [
            {"name": "text", "shape": [len(texts)], "datatype": "BYTES", "data": list(texts)}
        ]
    }
    return _post(f"{base_url.rstrip('/')}/v2/models/{model_name}/infer", body, timeout_s)


def _post(url: str, body: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    response = httpx.post(url, json=body, timeout=timeout_s)
    if response.is_success:
        return response.json()
    # kserve's errors carry {"error": ...}; other bodies (e.g. a 422 detail) may echo input
    try:
        payload = response.json()
    except ValueError:
        payload = None
    reason = payload.get("error") if isinstance(payload, dict) else None
    message = f"{url} answered HTTP {response.status_code}"
    raise PredictError(f"{message}: {reason}" if reason else message)
