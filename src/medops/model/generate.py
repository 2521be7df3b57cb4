"""Batched greedy generation from chat prompts: what evaluation and serving ask a causal LM.

Prompts are sorted by length and left-padded per batch, so a CPU spends its time on real
tokens; answers come back in input order. Greedy decoding keeps scores reproducible.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import torch
from transformers import AutoModelForCausalLM, GenerationMixin

from medops.model.chat import render_prompt

log = logging.getLogger(__name__)


def load_for_generation(path: str) -> GenerationMixin:
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    model.eval()
    return model


def generate(
    model: GenerationMixin,
    tokenizer: Any,
    conversations: Sequence[Sequence[dict[str, str]]],
    max_new_tokens: int,
    batch_size: int,
    label: str = "generate",
) -> list[str]:
    """The assistant's answer to each conversation (special tokens stripped)."""
    prompts = [render_prompt(tokenizer, c) for c in conversations]
    encoded = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    answers: list[str] = [""] * len(encoded)
    started = time.perf_counter()
    for done, start in enumerate(range(0, len(order), batch_size), start=1):
        chunk = order[start : start + batch_size]
        width = max(len(encoded[i]) for i in chunk)
        ids = torch.full((len(chunk), width), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, i in enumerate(chunk):
            ids[row, width - len(encoded[i]) :] = torch.tensor(encoded[i])
            mask[row, width - len(encoded[i]) :] = 1
        with torch.inference_mode():
            out = model.generate(
                input_ids=ids,
                attention_mask=mask,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
        for row, i in enumerate(chunk):
            answers[i] = tokenizer.decode(out[row, width:], skip_special_tokens=True).strip()
        batches = -(-len(order) // batch_size)
        log.info("%s: batch %d/%d (%.0f s)", label, done, batches, time.perf_counter() - started)
    return answers
