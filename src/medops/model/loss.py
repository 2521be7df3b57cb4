"""Answer-only next-token loss with the LM head run only where that loss is.

The loss covers answer tokens (labels not ``IGNORE``), a small share of a packed row; yet a
causal LM's head (a 49k-word vocabulary for SmolLM2) and the cross-entropy normally run at
every position. Here the head's input is cut down to the positions whose *next* label is an
answer token, per row and position, before the head multiplies it. The cut is a forward
pre-hook on the model's output embeddings, so the call still goes through the model's own
forward (and through DDP's, which all-reduces the gradients), whatever wraps it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from medops.model.chat import IGNORE


def _core(model: torch.nn.Module) -> Any:
    """The model under DDP's ``module`` wrapper, if any (peft and transformers expose the head)."""
    return model.module if hasattr(model, "module") else model


@contextmanager
def _head_only_at(model: torch.nn.Module, where: torch.Tensor) -> Iterator[None]:
    """Within the block, the LM head sees ``hidden[where]`` ((N, hidden)) instead of every
    position, so the model returns (N, vocabulary) logits."""
    head = _core(model).get_output_embeddings()

    def gather(_module: torch.nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        return (args[0][where], *args[1:])

    handle = head.register_forward_pre_hook(gather)
    try:
        yield
    finally:
        handle.remove()


def answer_loss_sum(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Summed next-token cross-entropy over answer tokens (labels shifted here, not in HF).

    Position t predicts label t+1, so the head runs where ``labels[:, 1:]`` is an answer
    token; the last position predicts nothing. Cross-entropy in fp32 whatever the autocast.
    """
    labels = batch["labels"]
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    where = torch.zeros_like(labels, dtype=torch.bool)
    where[:, :-1] = labels[:, 1:] != IGNORE
    with _head_only_at(model, where):
        logits = model(**inputs, use_cache=False).logits
    return torch.nn.functional.cross_entropy(
        logits.float(), labels[:, 1:][where[:, :-1]], reduction="sum"
    )
