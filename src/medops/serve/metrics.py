"""Prometheus metrics of the serving runtime, in the registry kserve's ``/metrics`` serves.

kserve 0.21 serves ``prometheus_client.REGISTRY`` (the default registry) at ``/metrics``, so
every metric here is registered there once, at import: one scrape shows kserve's and
medops' series, and any number of apps in one process (tests) share the same objects.

Labels are bounded: routes by their path template (``/v2/models/{model_name}/infer``,
never the raw path), status codes, key ids from the keys file, queue names chosen in code.
No label or value ever holds request text or a key.

The batcher and the generation engine call ``observe_batch``, ``set_queue_depth``,
``observe_first_token``, ``observe_generation`` and ``count_redactions``;
``install_metrics`` times every request and counts error statuses.
"""

from __future__ import annotations

import asyncio
import time
from typing import Literal

from fastapi import FastAPI
from prometheus_client import REGISTRY, Counter, Gauge, Histogram, exposition
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from medops.serve.auth import KEY_ID_STATE

UNMATCHED = "<unmatched>"  # route label of a path no route matches (404s, probes for holes)
CLIENT_CLOSED = 499  # status recorded when the client left before any response was sent
NO_KEY = "-"  # key_id label of a request that presented no key (auth off, open paths)

REQUEST_SECONDS = Histogram(
    "medops_http_request_duration_seconds",
    "Request latency until the last response byte, by route template and status class",
    ["route", "status_class"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
    registry=REGISTRY,
)
HTTP_ERRORS = Counter(
    "medops_http_errors",
    "Responses with a 4xx or 5xx status (499: client closed first), by route and code",
    ["route", "code"],
    registry=REGISTRY,
)
REQUESTS_BY_KEY = Counter(
    "medops_http_requests_by_key",
    "Requests by API key id (never the key) and status class",
    ["key_id", "status_class"],
    registry=REGISTRY,
)
FIRST_TOKEN_SECONDS = Histogram(
    "medops_time_to_first_token_seconds",
    "Time from a generation request's arrival to its first output token",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=REGISTRY,
)
OUTPUT_TOKENS = Counter("medops_output_tokens", "Generated tokens", registry=REGISTRY)
OUTPUT_TOKENS_PER_SECOND = Histogram(
    "medops_output_tokens_per_second",
    "Generation speed of one request: its output tokens over its generation time",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000),
    registry=REGISTRY,
)
BATCH_SIZE = Histogram(
    "medops_batch_size",
    "Texts or sequences per batched forward pass / generate loop",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
    registry=REGISTRY,
)
QUEUE_DEPTH = Gauge(
    "medops_queue_depth", "Requests waiting for a batch, by queue", ["queue"], registry=REGISTRY
)
REDACTIONS = Counter(
    "medops_phi_redactions",
    "PHI spans redacted (counts only), input: de-identified prompts, output: generated text",
    ["direction"],
    registry=REGISTRY,
)
for _direction in ("input", "output"):  # both series exist from the start, at 0
    REDACTIONS.labels(_direction)


def observe_batch(size: int) -> None:
    """One batch of ``size`` texts or sequences went through the model."""
    BATCH_SIZE.observe(size)


def set_queue_depth(name: str, n: int) -> None:
    """``n`` requests wait in queue ``name`` (a fixed name chosen in code, e.g. the model's)."""
    QUEUE_DEPTH.labels(name).set(n)


def observe_first_token(seconds: float) -> None:
    FIRST_TOKEN_SECONDS.observe(seconds)


def observe_generation(tokens: int, seconds: float) -> None:
    """One request generated ``tokens`` tokens in ``seconds``; its speed is recorded when
    both are positive."""
    OUTPUT_TOKENS.inc(tokens)
    if tokens > 0 and seconds > 0:
        OUTPUT_TOKENS_PER_SECOND.observe(tokens / seconds)


def count_redactions(direction: Literal["input", "output"], n: int) -> None:
    if direction not in ("input", "output"):
        raise ValueError("direction must be 'input' or 'output'")
    REDACTIONS.labels(direction).inc(n)


def route_template(routes: list[BaseRoute], scope: Scope) -> str:
    """The path template of the route that served (or would serve) this request.

    Starlette's router records the route in ``scope["route"]``; a request refused before
    routing (401, 413) is matched here the way the router would have matched it.
    """
    route = scope.get("route")
    if route is None:
        partial = None
        for candidate in routes:
            match, _ = candidate.matches(scope)
            if match is Match.FULL:
                route = candidate
                break
            if match is Match.PARTIAL and partial is None:
                partial = candidate
        route = route or partial
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else UNMATCHED


class MetricsMiddleware:
    """Latency by route template and status class, error counts, requests by key id."""

    def __init__(self, app: ASGIApp, router: Router) -> None:
        self.app = app
        self.router = router

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status: int | None = None

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        except BaseException as error:
            if status is None:
                status = CLIENT_CLOSED if isinstance(error, asyncio.CancelledError) else 500
            raise
        finally:
            self._record(scope, status or CLIENT_CLOSED, time.perf_counter() - start)

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        route = route_template(self.router.routes, scope)
        status_class = f"{status // 100}xx"
        REQUEST_SECONDS.labels(route, status_class).observe(seconds)
        if status >= 400:
            HTTP_ERRORS.labels(route, str(status)).inc()
        state = scope.get("state")
        key_id = state.get(KEY_ID_STATE) if isinstance(state, dict) else None
        REQUESTS_BY_KEY.labels(key_id or NO_KEY, status_class).inc()


async def metrics_endpoint(request: Request) -> Response:
    """The default registry in the format the scraper asks for, as kserve's handler does."""
    encoder, content_type = exposition.choose_encoder(request.headers.get("accept", ""))
    return Response(content=encoder(REGISTRY), headers={"content-type": content_type})


def install_metrics(app: FastAPI, expose: bool = True) -> None:
    """Measure every request; install it last so it also counts auth and limit refusals.

    With ``expose``, ``/metrics`` is added when the app has no such route yet. kserve's
    ``RESTServer`` adds its own after the middlewares: pass ``expose=False`` there.
    """
    app.add_middleware(MetricsMiddleware, router=app.router)
    if expose and not any(getattr(r, "path", None) == "/metrics" for r in app.router.routes):
        app.add_api_route("/metrics", metrics_endpoint, methods=["GET"], include_in_schema=False)
