"""Prometheus metrics: bounded labels, error counts, key ids, the engine's helpers, one registry.

Metric objects are process-wide, so every assertion is on the change a test causes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from prometheus_client import REGISTRY
from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send

from medops.serve import metrics
from medops.serve.auth import KeyRing, hash_key, install_auth
from medops.serve.metrics import (
    count_redactions,
    install_metrics,
    observe_batch,
    observe_first_token,
    observe_generation,
    set_queue_depth,
)

KEY = "medops_metrics-test-key"
SECRET = "Jane-Doe-MRN-QX4412ZK"


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def latency_count(route: str, status_class: str) -> float:
    return value(
        "medops_http_request_duration_seconds_count", route=route, status_class=status_class
    )


def make_app(with_auth: bool = False) -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def item(item_id: str) -> dict[str, int]:
        return {"length": len(item_id)}

    @app.get("/teapot", status_code=418)
    async def teapot() -> dict[str, str]:
        return {"short": "stout"}

    @app.get("/fail")
    async def fail() -> None:
        raise RuntimeError("boom")

    @app.get("/slow-stream")
    async def slow_stream() -> StreamingResponse:
        async def pieces() -> AsyncIterator[bytes]:
            for _ in range(3):
                await asyncio.sleep(0.1)
                yield b"x"

        return StreamingResponse(pieces())

    if with_auth:
        install_auth(app, KeyRing({"ci": hash_key(KEY)}))
    install_metrics(app)
    return app


def client(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test", timeout=5.0)


@pytest.mark.asyncio
async def test_latency_is_labelled_by_route_template_never_the_raw_path() -> None:
    before = latency_count("/items/{item_id}", "2xx")
    async with client(make_app()) as http:
        for item in ("1", "2", SECRET):
            assert (await http.get(f"/items/{item}", params={"q": SECRET})).status_code == 200
    assert latency_count("/items/{item_id}", "2xx") == before + 3
    labels = {
        label
        for family in REGISTRY.collect()
        if family.name.startswith("medops_")
        for sample in family.samples
        for label in sample.labels.values()
    }
    assert not any(SECRET in label or label == "/items/1" for label in labels)


@pytest.mark.asyncio
async def test_errors_are_counted_by_code_and_route() -> None:
    teapot = value("medops_http_errors_total", route="/teapot", code="418")
    failed = value("medops_http_errors_total", route="/fail", code="500")
    missing = value("medops_http_errors_total", route=metrics.UNMATCHED, code="404")
    ok_errors = value("medops_http_errors_total", route="/items/{item_id}", code="200")
    async with client(make_app()) as http:
        assert (await http.get("/teapot")).status_code == 418
        assert (await http.get("/fail")).status_code == 500
        assert (await http.get(f"/nowhere/{SECRET}")).status_code == 404
        assert (await http.get("/items/3")).status_code == 200
    assert value("medops_http_errors_total", route="/teapot", code="418") == teapot + 1
    assert value("medops_http_errors_total", route="/fail", code="500") == failed + 1
    assert value("medops_http_errors_total", route=metrics.UNMATCHED, code="404") == missing + 1
    assert value("medops_http_errors_total", route="/items/{item_id}", code="200") == ok_errors
    assert latency_count("/fail", "5xx") >= 1


@pytest.mark.asyncio
async def test_refusals_before_routing_keep_their_route_and_key_ids_are_counted() -> None:
    refused = value("medops_http_errors_total", route="/items/{item_id}", code="401")
    no_key = value("medops_http_requests_by_key_total", key_id=metrics.NO_KEY, status_class="4xx")
    by_ci = value("medops_http_requests_by_key_total", key_id="ci", status_class="2xx")
    async with client(make_app(with_auth=True)) as http:
        assert (await http.get("/items/9")).status_code == 401
        ok = await http.get("/items/9", headers={"Authorization": f"Bearer {KEY}"})
        assert ok.status_code == 200
    assert value("medops_http_errors_total", route="/items/{item_id}", code="401") == refused + 1
    after_no_key = value(
        "medops_http_requests_by_key_total", key_id=metrics.NO_KEY, status_class="4xx"
    )
    assert after_no_key == no_key + 1
    assert value("medops_http_requests_by_key_total", key_id="ci", status_class="2xx") == by_ci + 1
    assert not any(
        KEY in str(sample.labels) for family in REGISTRY.collect() for sample in family.samples
    )


@pytest.mark.asyncio
async def test_streaming_latency_runs_to_the_last_byte() -> None:
    name = "medops_http_request_duration_seconds_sum"
    before = value(name, route="/slow-stream", status_class="2xx")
    async with client(make_app()) as http:
        assert (await http.get("/slow-stream")).content == b"xxx"
    assert value(name, route="/slow-stream", status_class="2xx") - before >= 0.28


@pytest.mark.asyncio
async def test_a_request_abandoned_before_any_response_is_499() -> None:
    async def gone(scope: Scope, receive: Receive, send: Send) -> None:
        return None  # what the disconnect canceller leaves when it cancels a handler

    async def cancelled(scope: Scope, receive: Receive, send: Send) -> None:
        raise asyncio.CancelledError

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        raise AssertionError("nothing is sent")

    before = value("medops_http_errors_total", route=metrics.UNMATCHED, code="499")
    scope = {"type": "http", "method": "GET", "path": "/x", "root_path": "", "headers": []}
    await metrics.MetricsMiddleware(gone, FastAPI().router)(dict(scope), receive, send)
    with pytest.raises(asyncio.CancelledError):
        await metrics.MetricsMiddleware(cancelled, FastAPI().router)(dict(scope), receive, send)
    assert value("medops_http_errors_total", route=metrics.UNMATCHED, code="499") == before + 2


def test_engine_helpers_record_what_they_are_given() -> None:
    bucket = "medops_batch_size_bucket"
    le8, le4 = value(bucket, le="8.0"), value(bucket, le="4.0")
    observe_batch(8)
    assert (value(bucket, le="8.0"), value(bucket, le="4.0")) == (le8 + 1, le4)

    set_queue_depth("condition", 3)
    assert value("medops_queue_depth", queue="condition") == 3
    set_queue_depth("condition", 0)
    assert value("medops_queue_depth", queue="condition") == 0

    ttft_sum = value("medops_time_to_first_token_seconds_sum")
    observe_first_token(0.25)
    assert value("medops_time_to_first_token_seconds_sum") == pytest.approx(ttft_sum + 0.25)

    tokens = value("medops_output_tokens_total")
    tps_sum = value("medops_output_tokens_per_second_sum")
    tps_count = value("medops_output_tokens_per_second_count")
    observe_generation(50, 2.0)
    observe_generation(0, 0.0)  # nothing generated: counted, but no speed
    assert value("medops_output_tokens_total") == tokens + 50
    assert value("medops_output_tokens_per_second_sum") == pytest.approx(tps_sum + 25.0)
    assert value("medops_output_tokens_per_second_count") == tps_count + 1

    assert (
        REGISTRY.get_sample_value("medops_phi_redactions_total", {"direction": "output"})
        is not None
    )
    redacted = value("medops_phi_redactions_total", direction="input")
    count_redactions("input", 2)
    assert value("medops_phi_redactions_total", direction="input") == redacted + 2
    with pytest.raises(ValueError):
        count_redactions("sideways", 1)  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_many_apps_share_one_registry_served_by_kserve_and_by_metrics() -> None:
    first, second = make_app(), make_app()  # installing twice registers nothing twice
    before = latency_count("/teapot", "4xx")
    async with client(first) as one, client(second) as two:
        await one.get("/teapot")
        await two.get("/teapot")
        exposed = (await one.get("/metrics")).text
    assert latency_count("/teapot", "4xx") == before + 2
    assert "medops_http_request_duration_seconds_bucket" in exposed
    assert "medops_phi_redactions_total" in exposed

    from kserve.protocol.rest.server import metrics_handler  # what ModelServer mounts

    scrape = {"type": "http", "method": "GET", "path": "/metrics", "headers": []}
    response = await metrics_handler(Request(scope=scrape))
    assert b"medops_output_tokens_total" in response.body
    assert b"request_predict_seconds" in response.body  # kserve's own series, same scrape


def test_metrics_route_is_added_once_and_only_when_asked() -> None:
    app = make_app()
    install_metrics(app)
    paths = [getattr(route, "path", "") for route in app.router.routes]
    assert paths.count("/metrics") == 1
    bare = FastAPI()
    install_metrics(bare, expose=False)
    assert not any(getattr(r, "path", "") == "/metrics" for r in bare.router.routes)
