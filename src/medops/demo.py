"""`medops demo`: the whole flow on the embedded default, ending with real requests.

Pipeline (kfp.local) -> KServe ModelServer in a subprocess on loopback -> requests with
held-out, de-identified rows -> a summary printed and written as JSON. What is asked,
kept and printed is the task's own (``Task.demo``: ``medops.tasks.<task>.demo``); the
summary carries row ids, labels, metrics and model answers, never record text.
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
from medops.errors import MedopsError
from medops.launch.local import run_local
from medops.launch.summary import run_summary
from medops.manifest import read_manifest
from medops.recipe import Recipe
from medops.results import Evaluated, Ran, Registered
from medops.serve.client import wait_ready
from medops.tasks import task_of

log = logging.getLogger(__name__)
READY_TIMEOUT_S = 300  # a generative server loads the base, the adapter and the de-id models


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
        # our own CLI with the recipe path and an URI from our registry: no shell, no user text
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)  # noqa: S603
        try:
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class ServerExited(MedopsError, RuntimeError):
    """The demo's server process ended before it was ready; its log says why."""


def wait_serving(
    process: subprocess.Popen, base_url: str, model_name: str, log_path: Path, timeout_s: float
) -> None:
    """``wait_ready``, but stop at once when the server process has died (no 5-minute hang)."""
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise ServerExited(
                f"the server exited with code {process.returncode} before it was ready; "
                f"see {log_path}"
            )
        try:
            wait_ready(base_url, model_name, timeout_s=min(5.0, timeout_s))
            return
        except TimeoutError:
            if time.monotonic() >= deadline:
                raise


def _stage_seconds(outputs: dict[str, Path]) -> dict[str, float]:
    return {name: Ran.read(path).wall_seconds for name, path in outputs.items()}


def run_demo(recipe: Recipe) -> dict[str, Any]:
    task = task_of(recipe).function("demo")  # what this task is asked, kept and printed
    started = time.perf_counter()
    print(f"medops demo: recipe {recipe.name} ({recipe.content_hash()}) -> {recipe.out}")
    outputs = run_local(recipe)
    pipeline_seconds = time.perf_counter() - started
    run_summary(recipe, outputs)  # run-summary.json, as `medops run` writes it (drift, review)
    prepared, evaluated = Ran.read(outputs["prepare"]), Evaluated.read(outputs["evaluate"])
    registered = Registered.read(outputs["register"])
    passed = registered.gate_passed
    # the alias moves once the gate passed and the version is approved (docs/governance.md)
    register_extra = read_manifest(outputs["register"])["extra"]
    approval = register_extra.get("approval_summary")
    promoted = passed and register_extra.get("approval", "approved") == "approved"
    alias_uri = f"models:/{recipe.registry.model_name}@{recipe.registry.alias}"
    served_uri = alias_uri if promoted else registered.model_uri
    if not promoted:
        why = f"gate REFUSED ({registered.gate_reason})" if not passed else f"approval {approval}"
        print(
            f"!! {why}: alias {recipe.registry.alias!r} "
            f"untouched; serving the candidate {served_uri} on loopback for this request only"
        )

    test = read_split(outputs["prepare"], "test")
    port = _free_port(recipe.serve.host, recipe.serve.port)
    recipe = recipe.model_copy(update={"serve": recipe.serve.model_copy(update={"port": port})})
    base_url = f"http://{recipe.serve.host}:{port}"
    server_log = recipe.out / "server.log"
    print(f"serving {served_uri} at {base_url} (log: {server_log})")
    serve_started = time.perf_counter()
    with running_server(recipe, served_uri, server_log) as process:
        wait_serving(process, base_url, recipe.serve.model_name, server_log, READY_TIMEOUT_S)
        ready_seconds = time.perf_counter() - serve_started
        answers = task.ask(recipe, base_url, test)
    serve_seconds = {
        "ready": round(ready_seconds, 1),
        "requests": round(time.perf_counter() - serve_started - ready_seconds, 1),
    }

    metrics, counts = evaluated.metrics, prepared.counts
    scores = task.scores(recipe, metrics)
    summary = {
        "recipe": recipe.name,
        "recipe_hash": recipe.content_hash(),
        "task": recipe.task,
        **scores,
        "gate_passed": passed,
        "gate_reason": registered.gate_reason,
        "approval": approval,
        "model_uri": alias_uri if promoted else registered.model_uri,
        "model_version": registered.version,
        "served_model_uri": served_uri,
        "mlflow_run_id": registered.mlflow_run_id,
        "tracking_uri": registered.tracking_uri,
        "report": str(outputs["evaluate"] / "report.html"),
        "rows_in": counts["rows_in"],
        "rows_kept": counts["rows_kept"],
        "rows_quarantined": counts["rows_quarantined"],
        "test_scored": evaluated.counts.get("test_scored", evaluated.counts.get("test")),
        **answers,
        "stage_seconds": _stage_seconds(outputs),
        "pipeline_seconds": round(pipeline_seconds, 1),
        "serve_seconds": serve_seconds,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    path = recipe.out / "summary.json"
    path.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    task.show(summary)
    _print_footer(summary, path)
    return summary


# --- printing ---


def _print_footer(summary: dict[str, Any], path: Path) -> None:
    verdict = "PASSED" if summary["gate_passed"] else "REFUSED"
    print(f"gate {verdict} ({summary['gate_reason']})")
    if summary.get("approval"):
        print(f"approval: {summary['approval']}")
    print(
        f"rows in {summary['rows_in']} = kept {summary['rows_kept']} + quarantined "
        f"{summary['rows_quarantined']}"
    )
    print(
        f"model {summary['model_uri']} (run {summary['mlflow_run_id']}, {summary['tracking_uri']})"
    )
    print(f"report {summary['report']}")
    seconds = ", ".join(f"{k} {v:.0f} s" for k, v in summary["stage_seconds"].items())
    serve = summary["serve_seconds"]
    print(
        f"time: {seconds}; pipeline {summary['pipeline_seconds']:.0f} s; server ready "
        f"{serve['ready']:.0f} s, requests {serve['requests']:.0f} s"
    )
    print(f"summary {path} ({summary['wall_seconds']} s)")
