"""Mean-pooled sentence embeddings from a Hugging Face encoder.

MiniLM (all-MiniLM-L6-v2) was trained for mean pooling, so the classifier pools the same
way instead of using a CLS pooler that starts from a poor place (measured in the notes).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from medops.model.bins import first_fit_decreasing
from medops.model.packed_encoder import forward_packed, pack, packs_exactly


def load_encoder(path: str) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Encoder without the BERT pooler: it is unused here and breaks DDP (no gradient)."""
    tokenizer = AutoTokenizer.from_pretrained(path)
    try:
        encoder = AutoModel.from_pretrained(path, add_pooling_layer=False)
    except TypeError:
        encoder = AutoModel.from_pretrained(path)
    return encoder, tokenizer


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average token states over real tokens, then L2-normalise (as the encoder was trained).

    In float32 whatever the encoder's dtype: a bf16 sum over hundreds of tokens would lose
    the precision the head's decision needs."""
    hidden = hidden.float()
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    summed = (hidden * mask).sum(dim=1)
    pooled = summed / mask.sum(dim=1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, p=2, dim=-1)


# no text of max_length tokens is longer than this many characters per token in practice
# (English averages about 4); used to order by length and to cut served text early
CHARS_PER_TOKEN = 8

# a batch is cut before padding would add more than this share to its real length: on CPU
# padded positions cost as much as real ones, so a served batch of mixed lengths would be
# slower than its texts one by one
MAX_PADDING = 0.25


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> Iterator[list[int]]:
    """Indices grouped by similar length, at most ``batch_size`` per batch and at most
    ``MAX_PADDING`` of padding each: far less wasted compute than input order on CPU."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batch: list[int] = []
    total = 0
    for i in order:
        longest = max(lengths[i], 1)
        padded = longest * (len(batch) + 1)
        if batch and (len(batch) == batch_size or padded > (1 + MAX_PADDING) * (total + longest)):
            yield batch
            batch, total = [], 0
        batch.append(i)
        total += max(lengths[i], 1)
    if batch:
        yield batch


def embed(
    encoder: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    max_length: int,
    batch_size: int = 32,
    packed: bool = True,
) -> np.ndarray:
    """Embeddings for ``texts`` in input order (float32, L2-normalised).

    Packed rows (``medops.model.packed_encoder``) where the encoder gives each text exactly its
    unpacked embedding; otherwise batches of similar length. ``batch_size`` texts' worth of
    ``max_length`` tokens go through the encoder per call either way."""
    if not texts:
        hidden = encoder.config.hidden_size
        return np.zeros((0, hidden), dtype=np.float32)
    was_training = encoder.training
    encoder.eval()
    with torch.inference_mode():
        if packed and packs_exactly(encoder, tokenizer):
            out = _embed_packed(encoder, tokenizer, texts, max_length, batch_size)
        else:
            out = _embed_padded(encoder, tokenizer, texts, max_length, batch_size)
    encoder.train(was_training)
    return out


def _embed_packed(
    encoder: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    max_length: int,
    batch_size: int,
) -> np.ndarray:
    ids = tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
    rows = first_fit_decreasing([len(i) for i in ids], max_length)  # truncated: all fit
    rows.sort(key=lambda row: sum(len(ids[i]) for i in row))  # similar rows share a call
    out = np.zeros((len(texts), encoder.config.hidden_size), dtype=np.float32)
    calls = max(1, batch_size)
    for start in range(0, len(rows), calls):
        chunk = rows[start : start + calls]
        order = [i for row in chunk for i in row]  # the call's texts, numbered 0..n-1
        local = {i: n for n, i in enumerate(order)}
        packed = pack(
            [ids[i] for i in order], [[local[i] for i in row] for row in chunk], _pad(tokenizer)
        )
        out[order] = forward_packed(encoder, packed, len(order)).numpy()
    return out


def _pad(tokenizer: PreTrainedTokenizerBase) -> int:
    return int(tokenizer.pad_token_id)  # packs_exactly refuses a tokenizer without one


def _embed_padded(
    encoder: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    max_length: int,
    batch_size: int,
) -> np.ndarray:
    # characters stand in for tokens; truncation caps what the model sees
    lengths = [min(len(t), CHARS_PER_TOKEN * max_length) for t in texts]
    out = np.zeros((len(texts), encoder.config.hidden_size), dtype=np.float32)
    for idx in length_sorted_batches(lengths, batch_size):
        batch = tokenizer(
            [texts[i] for i in idx],
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        )
        hidden = encoder(**batch).last_hidden_state
        out[idx] = mean_pool(hidden, batch["attention_mask"]).numpy()
    return out
