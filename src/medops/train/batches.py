"""Global batches that every Ray worker computes identically, then slices by rank.

Length bucketing keeps padding low on CPU; shuffling the bucket order per epoch keeps
the gradient noise. Every worker must get at least one row per step or DDP hangs.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from medops.errors import ConfigurationError


def global_batches(
    lengths: Sequence[int], batch_size: int, world_size: int, seed: int, epoch: int
) -> list[list[int]]:
    if batch_size < world_size:
        raise ConfigurationError(
            f"train.batch_size {batch_size} is smaller than resources.num_workers {world_size}"
        )
    rng = random.Random(seed * 1000 + epoch)  # noqa: S311 - reproducible batches, not a secret
    order = list(range(len(lengths)))
    rng.shuffle(order)  # random tie-break among equal lengths
    order.sort(key=lambda i: lengths[i])
    batches = [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
    if len(batches) > 1 and len(batches[-1]) < world_size:
        batches[-2].extend(batches.pop())
    rng.shuffle(batches)
    return batches


def shard(batch: Sequence[int], rank: int, world_size: int) -> list[int]:
    return list(batch[rank::world_size])
