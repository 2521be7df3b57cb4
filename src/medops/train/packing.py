"""Sequence packing: several examples per row, none attending to another.

Padding every batch to its longest example wastes most of a CPU's time on pad tokens when
lengths vary. Packed rows hold several examples back to back; ``position_ids`` restart at
0 at each example and the attention mask is left ``None``, so transformers builds a
block-diagonal causal mask from the position resets (``find_packed_sequence_indices``):
the logits of a packed example equal its logits alone (tests/train/test_packing.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from medops.model.bins import first_fit_decreasing
from medops.model.chat import IGNORE, Tokenized


def pack(lengths: Sequence[int], max_length: int) -> list[list[int]]:
    """First-fit-decreasing bins of example indices whose lengths sum to <= ``max_length``."""
    too_long = [i for i, n in enumerate(lengths) if n > max_length]
    if too_long:
        raise ValueError(
            f"{len(too_long)} example(s) longer than {max_length} tokens reached packing; "
            "build_examples should have truncated or skipped them"
        )
    return first_fit_decreasing(lengths, max_length)


def collate_packed(rows: Sequence[Sequence[Tokenized]], pad_id: int) -> dict[str, torch.Tensor]:
    """``input_ids``, ``labels``, ``position_ids`` for packed rows (no attention mask).

    Padding at a row's end gets its own position run (restarting at 0), so it forms a
    separate segment that no real token can see.
    """
    width = max(sum(len(e.input_ids) for e in row) for row in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    for r, row in enumerate(rows):
        start = 0
        for example in row:
            end = start + len(example.input_ids)
            input_ids[r, start:end] = torch.tensor(example.input_ids)
            labels[r, start:end] = torch.tensor(example.labels)
            positions[r, start:end] = torch.arange(end - start)
            start = end
        positions[r, start:] = torch.arange(width - start)
    return {"input_ids": input_ids, "labels": labels, "position_ids": positions}


def collate_padded(examples: Sequence[Tokenized], pad_id: int) -> dict[str, torch.Tensor]:
    """One example per row, right-padded to the longest, with an attention mask."""
    width = max(len(e.input_ids) for e in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for r, example in enumerate(examples):
        n = len(example.input_ids)
        input_ids[r, :n] = torch.tensor(example.input_ids)
        labels[r, :n] = torch.tensor(example.labels)
        mask[r, :n] = 1
    return {"input_ids": input_ids, "labels": labels, "attention_mask": mask}
