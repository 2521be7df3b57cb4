"""Unpadded encoder inference: several texts share one row, each attending only to itself.

On CPU a padded position costs as much as a real one, and texts of mixed length padded
into one batch cost about what they cost one by one. Packing puts texts end to end in
rows no longer than one text may be (so attention never spans more than ``max_length``
positions), restarts the position ids at each text and masks attention block-diagonally:
the matrix products run on real tokens only, and each text's states equal its unpacked
ones (checked on the encoder itself before packing is used: ``packs_exactly``).
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

# cosine similarity a packed embedding must reach against the same text alone
EXACT = 0.9999
_CHECKED: weakref.WeakKeyDictionary[PreTrainedModel, bool] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class Packed:
    """One forward call's inputs and, per position, the text it belongs to (-1: padding)."""

    input_ids: torch.Tensor
    position_ids: torch.Tensor
    attention_mask: torch.Tensor  # (rows, 1, length, length), True where attention goes
    segment: torch.Tensor  # (rows, length): index into the call's texts, -1 for padding


def pack(ids: Sequence[Sequence[int]], rows: Sequence[Sequence[int]], pad_id: int) -> Packed:
    """The tensors for ``rows`` (lists of indices into ``ids``), right-padded to the
    longest row; a padding position attends to itself only, so no row of the mask is empty."""
    length = max(sum(len(ids[i]) for i in row) for row in rows)
    input_ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    position_ids = torch.zeros((len(rows), length), dtype=torch.long)
    segment = torch.full((len(rows), length), -1, dtype=torch.long)
    for r, row in enumerate(rows):
        offset = 0
        for i in row:
            n = len(ids[i])
            input_ids[r, offset : offset + n] = torch.tensor(ids[i], dtype=torch.long)
            position_ids[r, offset : offset + n] = torch.arange(n)
            segment[r, offset : offset + n] = i
            offset += n
    # a text's positions see each other; -1 == -1 would join the padding, hence the check
    same = (segment[:, :, None] == segment[:, None, :]) & (segment[:, :, None] >= 0)
    mask = same | torch.eye(length, dtype=torch.bool)
    return Packed(input_ids, position_ids, mask[:, None], segment)


def pooled(hidden: torch.Tensor, segment: torch.Tensor, texts: int) -> torch.Tensor:
    """Each text's mean token state, L2-normalised, in float32 (as ``mean_pool``)."""
    flat = hidden.float().reshape(-1, hidden.shape[-1])
    owner = segment.reshape(-1)
    real = owner >= 0
    sums = torch.zeros((texts, flat.shape[-1]), dtype=flat.dtype)
    sums.index_add_(0, owner[real], flat[real])
    counts = torch.bincount(owner[real], minlength=texts).clamp(min=1).unsqueeze(-1)
    return torch.nn.functional.normalize(sums / counts, p=2, dim=-1)


def forward_packed(encoder: PreTrainedModel, packed: Packed, texts: int) -> torch.Tensor:
    hidden = encoder(
        input_ids=packed.input_ids,
        position_ids=packed.position_ids,
        token_type_ids=torch.zeros_like(packed.input_ids),
        attention_mask=packed.attention_mask,
    ).last_hidden_state
    return pooled(hidden, packed.segment, texts)


def never_pack(encoder: PreTrainedModel) -> None:
    """Keep ``encoder`` on padded batches (the comparison arm of ``bench/serve_classifier``)."""
    _CHECKED[encoder] = False


def _plain(encoder: PreTrainedModel, ids: Sequence[int]) -> torch.Tensor:
    """One text through the encoder's ordinary path (no padding, default positions)."""
    hidden = encoder(input_ids=torch.tensor([list(ids)])).last_hidden_state.float()
    return torch.nn.functional.normalize(hidden.mean(dim=1), p=2, dim=-1)


def packs_exactly(encoder: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> bool:
    """Whether this encoder takes position ids and a block mask and then gives each text
    what it gives that text alone (tried once per encoder on two short texts; an
    architecture that ignores either, or has no token types, stays on padded batches)."""
    if encoder in _CHECKED:
        return _CHECKED[encoder]
    accepted = inspect.signature(encoder.forward).parameters
    result = False
    if {"position_ids", "token_type_ids"} <= set(accepted) and tokenizer.pad_token_id is not None:
        probe = ["packing probe, first text", "a second, longer text for the packing probe"]
        ids = [tokenizer(t)["input_ids"] for t in probe]
        with torch.inference_mode():
            together = forward_packed(encoder, pack(ids, [[0, 1]], tokenizer.pad_token_id), 2)
            alone = torch.cat([_plain(encoder, i) for i in ids])
        result = bool(torch.all((together * alone).sum(-1) > EXACT))
    _CHECKED[encoder] = result
    return result
