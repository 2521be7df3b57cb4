"""Exposure of a canary: how much more likely the model finds it than secrets it never saw.

Carlini et al. (2019) define exposure as ``log2 |R| - log2 rank``, the rank of the canary
among all ``|R|`` candidates of its format ordered by the model's log-perplexity. Ranking
ten million phone numbers is out of reach, so, as the paper does, the reference
candidates' log-perplexities are fitted with a skew-normal and the exposure is
``-log2 P(reference <= canary)`` from the fit: it can exceed ``log2`` of the reference
count, which the plain rank among the references (also reported) cannot.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from scipy import stats

from medops.model.chat import IGNORE, Tokenized
from medops.train.packing import collate_padded


def exposure_bits(canary: float, reference: Sequence[float]) -> float:
    """Exposure estimated from a skew-normal fitted to the reference log-perplexities."""
    shape, loc, scale = stats.skewnorm.fit(np.asarray(reference, dtype=float))
    # logcdf stays finite far in the tail, where the cdf itself underflows to 0
    return float(-stats.skewnorm.logcdf(canary, shape, loc, scale) / math.log(2))


def rank_exposure_bits(canary: float, reference: Sequence[float]) -> float:
    """``log2 |R| - log2 rank`` over the canary and the references only (at most log2 |R|)."""
    rank = 1 + sum(1 for value in reference if value < canary)
    return math.log2(len(reference) + 1) - math.log2(rank)


def _first_answer(example: Tokenized) -> int:
    return next(i for i, label in enumerate(example.labels) if label != IGNORE)


def log_perplexities(
    model: torch.nn.Module, examples: Sequence[Tokenized], pad_id: int, batch_size: int
) -> list[float]:
    """Summed negative log-likelihood (nats) of each example's answer tokens."""
    values: list[float] = []
    with torch.no_grad():
        for start in range(0, len(examples), batch_size):
            chunk = examples[start : start + batch_size]
            batch = collate_padded(chunk, pad_id)
            # the LM head runs only from the earliest answer on: candidates share their prompt
            width = batch["input_ids"].shape[1]
            keep = width - min(_first_answer(e) for e in chunk) + 1
            logits = model(
                input_ids=batch["input_ids"],
                attention_mask=batch["attention_mask"],
                use_cache=False,
                logits_to_keep=keep,
            ).logits
            nll = torch.nn.functional.cross_entropy(
                logits[:, :-1].float().transpose(1, 2),
                batch["labels"][:, width - keep + 1 :],
                ignore_index=IGNORE,
                reduction="none",
            )
            values.extend(nll.sum(dim=1).tolist())
    return values
