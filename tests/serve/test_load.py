"""Bounded load and fuzzing against the served stacks, in-process (ASGI, no port).

Both stacks are what ``medops serve`` runs (``data_plane``: limits, disconnect
cancellation, metrics): the registry's keyword classifier, the generative
server (OpenAI routes) with a tiny random Llama. Under 2,000 requests at concurrency 32
every request is answered 200 or refused 429 (backpressure), never 5xx; schemathesis,
driven by each app's own OpenAPI document, finds no 5xx.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import schemathesis
import torch
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from transformers import AutoModelForCausalLM, AutoTokenizer

from medops.recipe import Batching, Deid, build_recipe
from medops.serve.chat_model import ServedLM
from medops.serve.guard import Guard
from medops.serve.server import build_app, data_plane
from medops.tasks.classification.serving import ClassifierPredictor

from .conftest import Registry, recipe_dict

REQUESTS = 2000
CONCURRENCY = 32


@pytest.fixture(scope="module")
def classifier_app(registry: Registry) -> FastAPI:
    predictor = ClassifierPredictor(registry.recipe, registry.model_uri, registry.tracking_uri)
    predictor.load()
    return build_app([predictor], data_plane(registry.recipe, predictor))


@pytest.fixture(scope="module")
def generative_app(tiny_lm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    """The OpenAI routes over a tiny model, with a short queue so load meets backpressure."""
    raw = recipe_dict(tmp_path_factory.mktemp("load"))
    raw["serve"] = {"limits": {"max_queue": 8, "max_tokens": 4, "max_prompt_tokens": 128}}
    recipe = build_recipe(raw)
    served = ServedLM(
        AutoModelForCausalLM.from_pretrained(tiny_lm_dir, dtype=torch.float32).eval(),
        AutoTokenizer.from_pretrained(tiny_lm_dir),
        {"med": None},
        Guard(Deid(), inputs=False, outputs=False),
        recipe.serve.limits,
        Batching(max_batch_size=8, max_wait_ms=5),
    )
    app = FastAPI()
    (install,) = data_plane(recipe, SimpleNamespace(generator=served))
    install(app)
    return app


async def _load(app: FastAPI, path: str, bodies: list[dict]) -> Counter[int]:
    statuses: Counter[int] = Counter()
    gate = asyncio.Semaphore(CONCURRENCY)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://served") as client:

        async def one(body: dict) -> None:
            async with gate:
                response = await client.post(path, json=body, timeout=60)
                statuses[response.status_code] += 1

        await asyncio.wait_for(asyncio.gather(*(one(b) for b in bodies)), 600)
    return statuses


def test_classifier_under_load_answers_every_request_without_5xx(classifier_app: FastAPI):
    texts = ["so sad", "knee pain", "a rash on my face", "sad and in pain"]
    bodies = [{"instances": [texts[i % len(texts)]]} for i in range(REQUESTS)]
    statuses = asyncio.run(_load(classifier_app, "/v1/models/condition:predict", bodies))
    assert sum(statuses.values()) == REQUESTS
    assert set(statuses) <= {200, 429}, statuses
    assert statuses[200] > 0


def test_generative_under_load_answers_or_refuses_429_without_5xx(generative_app: FastAPI):
    bodies = [
        {"model": "med", "messages": [{"role": "user", "content": f"note {i}"}], "max_tokens": 2}
        for i in range(REQUESTS)
    ]
    statuses = asyncio.run(_load(generative_app, "/openai/v1/chat/completions", bodies))
    assert sum(statuses.values()) == REQUESTS
    assert set(statuses) <= {200, 429}, statuses
    assert statuses[200] > 0 and statuses[429] > 0  # the short queue pushed back


# --- schemathesis: each app's own OpenAPI document, no 5xx ---
# (driven by hand: schemathesis' pytest plugin does not run under this pytest version)

_BOUNDED = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,  # the same cases on every run: a failure reproduces
    database=None,
)


def _fuzz(app: FastAPI) -> int:
    """Every operation of the app's document, 25 generated cases each; returns how many."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    calls = 0
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @_BOUNDED
        def check(case: Any) -> None:
            nonlocal calls
            calls += 1
            response = case.call()
            status = response.status_code
            if status == 501:  # not a failure: a feature the server says it does not have
                versioned = "model_version" in {**(case.query or {}), **case.path_parameters}
                assert versioned or case.path.endswith(":explain"), case.path
                return
            assert status < 500, (case.method, case.path, status)

        check()
    return calls


def test_classifier_openapi_fuzz_finds_no_5xx(classifier_app: FastAPI) -> None:
    assert _fuzz(classifier_app) > 100


def test_generative_openapi_fuzz_finds_no_5xx(generative_app: FastAPI) -> None:
    assert _fuzz(generative_app) > 50
