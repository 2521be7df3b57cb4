"""What ``medops demo`` asks a served extraction model, and what it keeps and prints.

One held-out, de-identified review through the official ``openai`` client on the chat
route, prompted exactly as evaluation prompted, then through v1 and v2. The summary keeps
the row's id, label and gold fields plus the model's answers, never the review's text.
"""

from __future__ import annotations

import json
from typing import Any, cast

from medops.errors import DataError
from medops.serve.client import predict_v1, predict_v2
from medops.tasks.causal_lm.examples import TargetError, prompt_messages, target
from medops.tasks.causal_lm.recipe import CausalLMRecipe

REQUEST_TIMEOUT_S = 120.0  # one generation on a busy 2-core CPU
# the loopback demo server has no serve.api_keys_file; the client insists on some key
NO_AUTH_KEY = "medops-demo-no-auth"


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


def ask(recipe: CausalLMRecipe, base_url: str, test: list[dict[str, Any]]) -> dict[str, Any]:
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


def scores(recipe: CausalLMRecipe, metrics: dict[str, float]) -> dict[str, Any]:
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


def show(summary: dict[str, Any]) -> None:
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
