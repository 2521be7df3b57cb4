"""Benchmark: single-entity online feature lookup, Redis vs SQLite, in one run.

The drug history of the extraction demo's real reviews (``recipes/extraction-demo.yaml``,
``features.entity=drug``: 3 features) is built and materialized twice, once into the
embedded SQLite online store and once into the Redis on 127.0.0.1:6379 (database 15,
flushed before and after; no other database is touched). Then ``--lookups`` single-entity
lookups through ``medops.features.online.FeatureLookup`` (Feast's ``get_online_features``,
one store held open, as a server would) against each store, alternating store by store
so both see the same machine load; each lookup asks for one random known drug (seeded).
Reported: p50/p99/mean/max in milliseconds per store, the Redis/SQLite ratio, and the
goal of issue 15, p99 <= 5 ms. Writes ``bench/results/feature_lookup.json``.

    .venv/bin/python bench/feature_lookup.py [--lookups 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from medops.features.build import prepare_features
from medops.features.online import FeatureLookup, materialize
from medops.features.redis_store import redis_client
from medops.features.store import FeatureRepo
from medops.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "extraction-demo.yaml"
RESULTS = Path(__file__).parent / "results" / "feature_lookup.json"
REDIS = "127.0.0.1:6379,db=15"
GOAL_P99_MS = 5.0
WARMUP = 100


def _store(output: Path, online: list[str]) -> FeatureLookup:
    recipe = load_recipe(RECIPE, [f"output_dir={output}", "features.entity=drug", *online])
    repo = prepare_features(recipe)
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


def run(lookups: int) -> dict[str, Any]:
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
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_1m_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "python": platform.python_version(),
            "feast": version("feast"),
            "redis_server": redis_client(REDIS).info("server").get("redis_version"),
        },
        "reproduce": ".venv/bin/python bench/feature_lookup.py --lookups " + str(lookups),
    }


def _drugs(repo: FeatureRepo) -> list[str]:
    """Every drug with a feature row: lookups ask for known entities only."""
    table = pq.read_table(repo.spec.data, columns=[repo.spec.join_key])
    return sorted(set(table[repo.spec.join_key].to_pylist()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lookups", type=int, default=2000)
    args = parser.parse_args()
    result = run(args.lookups)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("redis", "sqlite", "redis_over_sqlite", "goal_met")}))


if __name__ == "__main__":
    main()
