"""`medops demo`: the whole flow on the embedded default, ending with real requests.

Pipeline (kfp.local) -> KServe ModelServer in a subprocess on loopback -> one v1 and one
v2 request with held-out, de-identified rows -> a summary printed and written as JSON.
The summary carries row ids and labels, never record text.
"""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from medops.data.dataset import read_split
from medops.launch.local import run_local
from medops.manifest import read_manifest
from medops.recipe import Recipe
from medops.serve.client import predict_v1, predict_v2, wait_ready

log = logging.getLogger(__name__)
DEMO_ROWS = 2


def _free_port(host: str, preferred: int) -> int:
    with socket.socket() as probe:
        try:
            probe.bind((host, preferred))
            return preferred
        except OSError:
            probe.bind((host, 0))
            return probe.getsockname()[1]


@contextmanager
def running_server(recipe: Recipe, model_uri: str, log_path: Path):
    """The real server as a separate process, always stopped (SIGTERM, then SIGKILL)."""
    recipe_path = recipe.out / "recipe.resolved.yaml"
    recipe_path.write_text(yaml.safe_dump(recipe.to_dict(), sort_keys=False))
    command = [sys.executable, "-m", "medops.cli", "serve", str(recipe_path)]
    command += ["--model-uri", model_uri]
    with log_path.open("w") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _request_rows(test: list[dict[str, str]]) -> list[dict[str, str]]:
    """The first held-out row of each of the first ``DEMO_ROWS`` labels: varied answers."""
    by_label: dict[str, dict[str, str]] = {}
    for row in test:
        by_label.setdefault(row["label"], row)
    return list(by_label.values())[:DEMO_ROWS]


def _stage_seconds(outputs: dict[str, Path]) -> dict[str, float]:
    return {name: read_manifest(path)["wall_seconds"] for name, path in outputs.items()}


def run_demo(recipe: Recipe) -> dict[str, Any]:
    started = time.perf_counter()
    print(f"medops demo: recipe {recipe.name} ({recipe.content_hash()}) -> {recipe.out}")
    outputs = run_local(recipe)
    prepared, evaluated = read_manifest(outputs["prepare"]), read_manifest(outputs["evaluate"])
    registered = read_manifest(outputs["register"])["extra"]
    passed = bool(registered["gate_passed"])
    alias_uri = f"models:/{recipe.registry.model_name}@{recipe.registry.alias}"
    served_uri = alias_uri if passed else registered["model_uri"]
    if not passed:
        print(
            f"!! gate REFUSED ({registered['gate_reason']}): alias {recipe.registry.alias!r} "
            f"untouched; serving the candidate {served_uri} on loopback for this request only"
        )

    rows = _request_rows(read_split(outputs["prepare"], "test"))
    port = _free_port(recipe.serve.host, recipe.serve.port)
    recipe = recipe.model_copy(update={"serve": recipe.serve.model_copy(update={"port": port})})
    base_url = f"http://{recipe.serve.host}:{port}"
    server_log = recipe.out / "server.log"
    print(f"serving {served_uri} at {base_url} (log: {server_log})")
    with running_server(recipe, served_uri, server_log):
        wait_ready(base_url, recipe.serve.model_name, timeout_s=180)
        texts = [r["text"] for r in rows]
        v1 = predict_v1(base_url, recipe.serve.model_name, texts)
        v2 = predict_v2(base_url, recipe.serve.model_name, texts)

    metrics, counts = evaluated["metrics"], prepared["counts"]
    summary = {
        "recipe": recipe.name,
        "recipe_hash": recipe.content_hash(),
        "macro_f1": metrics["macro_f1"],
        "baseline_macro_f1": metrics["baseline_macro_f1"],
        "accuracy": metrics["accuracy"],
        "baseline_accuracy": metrics["baseline_accuracy"],
        "gate_passed": passed,
        "gate_reason": registered["gate_reason"],
        "model_uri": alias_uri if passed else registered["model_uri"],
        "model_version": registered["version"],
        "served_model_uri": served_uri,
        "mlflow_run_id": registered["mlflow_run_id"],
        "tracking_uri": registered["tracking_uri"],
        "report": str(outputs["evaluate"] / "report.html"),
        "rows_in": counts["rows_in"],
        "rows_kept": counts["rows_kept"],
        "rows_quarantined": counts["rows_quarantined"],
        "request_rows": [{"id": r["id"], "label": r["label"]} for r in rows],
        "v1_response": v1,
        "v2_response": v2,
        "stage_seconds": _stage_seconds(outputs),
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    path = recipe.out / "summary.json"
    path.write_text(json.dumps(summary, indent=2) + "\n")
    _print_summary(summary, path)
    return summary


def _print_summary(summary: dict[str, Any], path: Path) -> None:
    for row, answer in zip(
        summary["request_rows"], summary["v1_response"]["predictions"], strict=True
    ):
        top = max(answer["probabilities"].values())
        print(f"  v1 {row['id']}: true {row['label']!r} -> {answer['condition']!r} (p={top:.2f})")
    conditions = next(o for o in summary["v2_response"]["outputs"] if o["name"] == "condition")
    print(f"  v2 conditions: {conditions['data']}")
    verdict = "PASSED" if summary["gate_passed"] else "REFUSED"
    print(
        f"macro-F1 {summary['macro_f1']:.4f} vs baseline {summary['baseline_macro_f1']:.4f}; "
        f"accuracy {summary['accuracy']:.4f}; gate {verdict}"
    )
    print(
        f"rows in {summary['rows_in']} = kept {summary['rows_kept']} + quarantined "
        f"{summary['rows_quarantined']}"
    )
    print(
        f"model {summary['model_uri']} (run {summary['mlflow_run_id']}, {summary['tracking_uri']})"
    )
    print(f"report {summary['report']}")
    print(f"summary {path} ({summary['wall_seconds']} s)")
