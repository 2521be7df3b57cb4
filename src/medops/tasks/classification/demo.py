"""What ``medops demo`` asks a served classifier, and what of the answers it keeps and prints.

Two held-out, de-identified rows of different labels through KServe v1 and v2; the
summary keeps their ids and labels, never their text.
"""

from __future__ import annotations

from typing import Any

from medops.recipe import Recipe
from medops.serve.client import predict_v1, predict_v2

DEMO_ROWS = 2


def request_rows(test: list[dict[str, Any]], count: int = DEMO_ROWS) -> list[dict[str, Any]]:
    """The first held-out row of each of the first ``count`` labels: varied answers."""
    by_label: dict[str, dict[str, Any]] = {}
    for row in test:
        by_label.setdefault(row["label"], row)
    return list(by_label.values())[:count]


def ask(recipe: Recipe, base_url: str, test: list[dict[str, Any]]) -> dict[str, Any]:
    """v1 and v2 with two held-out rows of different labels."""
    rows = request_rows(test)
    texts = [r["text"] for r in rows]
    return {
        "request_rows": [{"id": r["id"], "label": r["label"]} for r in rows],
        "v1_response": predict_v1(base_url, recipe.serve.model_name, texts),
        "v2_response": predict_v2(base_url, recipe.serve.model_name, texts),
    }


def scores(recipe: Recipe, metrics: dict[str, float]) -> dict[str, Any]:
    keys = ("macro_f1", "baseline_macro_f1", "accuracy", "baseline_accuracy")
    return {key: metrics[key] for key in keys}


def show(summary: dict[str, Any]) -> None:
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
