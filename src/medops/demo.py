"""`medops demo`: the whole flow on the embedded default, ending with real requests.

Pipeline (kfp.local) -> KServe ModelServer in a subprocess on loopback -> requests with
held-out, de-identified rows -> a summary printed and written as JSON. A classifier is
asked through KServe v1 and v2; a generative (causal-lm) model through the official
``openai`` client on its chat route, then v1 and v2, with the very prompt evaluation used.
The summary carries row ids, labels, metrics and model answers, never record text.
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
from typing import Any, cast

import yaml

from medops.data.dataset import read_split
from medops.errors import DataError, MedopsError
from medops.launch.local import run_local
from medops.manifest import read_manifest
from medops.recipe import Recipe
from medops.serve.client import predict_v1, predict_v2, wait_ready
from medops.tasks.causal_lm.examples import TargetError, prompt_messages, target
from medops.tasks.causal_lm.recipe import CausalLMRecipe

log = logging.getLogger(__name__)
DEMO_ROWS = 2
READY_TIMEOUT_S = 300  # a generative server loads the base, the adapter and the de-id models
REQUEST_TIMEOUT_S = 120.0  # one generation on a busy 2-core CPU
# the loopback demo server has no serve.api_keys_file; the client insists on some key
NO_AUTH_KEY = "medops-demo-no-auth"


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


def _request_rows(test: list[dict[str, Any]], count: int = DEMO_ROWS) -> list[dict[str, Any]]:
    """The first held-out row of each of the first ``count`` labels: varied answers."""
    by_label: dict[str, dict[str, Any]] = {}
    for row in test:
        by_label.setdefault(row["label"], row)
    return list(by_label.values())[:count]


def _stage_seconds(outputs: dict[str, Path]) -> dict[str, float]:
    return {name: read_manifest(path)["wall_seconds"] for name, path in outputs.items()}


# --- requests: what each task is asked, and what of it the summary keeps ---


def _ask_classifier(recipe: Recipe, base_url: str, test: list[dict[str, Any]]) -> dict[str, Any]:
    """v1 and v2 with two held-out rows of different labels."""
    rows = _request_rows(test)
    texts = [r["text"] for r in rows]
    return {
        "request_rows": [{"id": r["id"], "label": r["label"]} for r in rows],
        "v1_response": predict_v1(base_url, recipe.serve.model_name, texts),
        "v2_response": predict_v2(base_url, recipe.serve.model_name, texts),
    }


def _extraction_row(recipe: CausalLMRecipe, test: list[dict[str, Any]]) -> dict[str, Any]:
    """The first held-out row whose gold answer can be built, so the answer can be judged."""
    for row in test:
        try:
            return {**row, "gold": target(row, recipe.lm)}
        except TargetError:
            continue
    raise DataError("no held-out row has every target field: nothing to ask the model")


def chat_answer(recipe: CausalLMRecipe, base_url: str, text: str) -> dict[str, Any]:
    """One chat completion through the official OpenAI client, prompted as evaluation is."""
    import openai  # the client only: keeps `medops demo` of a classifier free of it
    from openai.types.chat import ChatCompletionMessageParam

    client = openai.OpenAI(
        base_url=f"{base_url}/openai/v1",
        api_key=NO_AUTH_KEY,
        timeout=REQUEST_TIMEOUT_S,
        max_retries=0,
    )
    messages = cast(list[ChatCompletionMessageParam], prompt_messages(text, recipe.lm))
    completion = client.chat.completions.create(
        model=recipe.serve.model_name,
        messages=messages,
        max_tokens=recipe.lm.max_new_tokens,
        temperature=0.0,
    )
    return completion.model_dump(mode="json", exclude_none=True)


def _ask_extractor(
    recipe: CausalLMRecipe, base_url: str, test: list[dict[str, Any]]
) -> dict[str, Any]:
    """The OpenAI chat route, then v1 and v2, all with the same held-out review."""
    row = _extraction_row(recipe, test)
    name = recipe.serve.model_name
    chat = chat_answer(recipe, base_url, row["text"])
    return {
        "request_rows": [{"id": row["id"], "label": row["label"], "gold": row["gold"]}],
        "chat_response": chat,
        "chat_answer": chat["choices"][0]["message"]["content"],
        "v1_response": predict_v1(base_url, name, [row["text"]], REQUEST_TIMEOUT_S),
        "v2_response": predict_v2(base_url, name, [row["text"]], REQUEST_TIMEOUT_S),
    }


# --- metrics: the summary's fixed keys, meaningful for each task ---


def _classifier_metrics(metrics: dict[str, float]) -> dict[str, Any]:
    keys = ("macro_f1", "baseline_macro_f1", "accuracy", "baseline_accuracy")
    return {key: metrics[key] for key in keys}


def _extractor_metrics(recipe: CausalLMRecipe, metrics: dict[str, float]) -> dict[str, Any]:
    """macro_f1/accuracy are the condition field's; the rest side by side per baseline.

    ``fewshot_*`` are present only when the run scored a few-shot baseline (``lm.few_shot``).
    """
    label = next((f.name for f in recipe.lm.fields if f.source == "label"), None)
    sides = [p for p in ("", "baseline_", "fewshot_") if f"{p}json_validity" in metrics]
    summary: dict[str, Any] = {}
    for prefix in sides:
        if label:
            summary[f"{prefix}macro_f1"] = metrics[f"{prefix}{label}_macro_f1"]
            summary[f"{prefix}accuracy"] = metrics[f"{prefix}{label}_accuracy"]
        for key in ("json_validity", "field_precision", "field_recall", "field_f1"):
            summary[f"{prefix}{key}"] = metrics[f"{prefix}{key}"]
    summary["field_f1_per_field"] = {
        f.name: {p.rstrip("_") or "model": metrics[f"{p}field_f1_{f.name}"] for p in sides}
        for f in recipe.lm.fields
    }
    summary["metrics"] = metrics  # every evaluate metric, prefixed as in its manifest
    return summary


def run_demo(recipe: Recipe) -> dict[str, Any]:
    started = time.perf_counter()
    print(f"medops demo: recipe {recipe.name} ({recipe.content_hash()}) -> {recipe.out}")
    outputs = run_local(recipe)
    pipeline_seconds = time.perf_counter() - started
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
        if isinstance(recipe, CausalLMRecipe):
            answers = _ask_extractor(recipe, base_url, test)
        else:
            answers = _ask_classifier(recipe, base_url, test)
    serve_seconds = {
        "ready": round(ready_seconds, 1),
        "requests": round(time.perf_counter() - serve_started - ready_seconds, 1),
    }

    metrics, counts = evaluated["metrics"], prepared["counts"]
    if isinstance(recipe, CausalLMRecipe):
        scores = _extractor_metrics(recipe, metrics)
    else:
        scores = _classifier_metrics(metrics)
    summary = {
        "recipe": recipe.name,
        "recipe_hash": recipe.content_hash(),
        "task": recipe.task,
        **scores,
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
        "test_scored": evaluated["counts"].get("test_scored", evaluated["counts"].get("test")),
        **answers,
        "stage_seconds": _stage_seconds(outputs),
        "pipeline_seconds": round(pipeline_seconds, 1),
        "serve_seconds": serve_seconds,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    path = recipe.out / "summary.json"
    path.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    if isinstance(recipe, CausalLMRecipe):
        _print_extractor(summary)
    else:
        _print_classifier(summary)
    _print_footer(summary, path)
    return summary


# --- printing ---


def _print_classifier(summary: dict[str, Any]) -> None:
    for row, answer in zip(
        summary["request_rows"], summary["v1_response"]["predictions"], strict=True
    ):
        top = max(answer["probabilities"].values())
        print(f"  v1 {row['id']}: true {row['label']!r} -> {answer['condition']!r} (p={top:.2f})")
    conditions = next(o for o in summary["v2_response"]["outputs"] if o["name"] == "condition")
    print(f"  v2 conditions: {conditions['data']}")
    print(
        f"macro-F1 {summary['macro_f1']:.4f} vs baseline {summary['baseline_macro_f1']:.4f}; "
        f"accuracy {summary['accuracy']:.4f}"
    )


def _print_extractor(summary: dict[str, Any]) -> None:
    (row,) = summary["request_rows"]
    print(f"  held-out review {row['id']}, gold {json.dumps(row['gold'], ensure_ascii=False)}")
    print(f"  chat (openai client) -> {summary['chat_answer']}")
    (v1,) = summary["v1_response"]["predictions"]
    print(f"  v1 -> json_valid {v1['json_valid']}, fields {json.dumps(v1['fields'])}")
    sides = [("model", ""), ("base", "baseline_"), ("few-shot base", "fewshot_")]
    sides = [(name, p) for name, p in sides if f"{p}json_validity" in summary]
    print("  " + " | ".join(f"{name:>13}" for name in ["", *(n for n, _ in sides)]))
    rows = [
        ("condition macro-F1", "macro_f1"),
        ("condition accuracy", "accuracy"),
        ("JSON validity", "json_validity"),
        ("field P (all)", "field_precision"),
        ("field R (all)", "field_recall"),
        ("field F1 (all)", "field_f1"),
    ]
    for title, key in rows:
        if key in summary:
            values = " | ".join(f"{summary[p + key]:>13.4f}" for _, p in sides)
            print(f"  {title:>18} | {values}")
    for field, by_side in summary["field_f1_per_field"].items():
        values = " | ".join(f"{v:>13.4f}" for v in by_side.values())
        print(f"  {'F1 ' + field:>18} | {values}")


def _print_footer(summary: dict[str, Any], path: Path) -> None:
    verdict = "PASSED" if summary["gate_passed"] else "REFUSED"
    print(f"gate {verdict} ({summary['gate_reason']})")
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
