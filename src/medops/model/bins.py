"""Bin packing of sequences into rows of a fixed token capacity (training and inference)."""

from __future__ import annotations

from collections.abc import Sequence


def first_fit_decreasing(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Indices per bin, longest first, each into the first bin with room; a length over
    ``capacity`` gets a bin of its own (callers that cannot allow that check first)."""
    bins: list[list[int]] = []
    room: list[int] = []
    for index in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        slot = next((b for b, free in enumerate(room) if free >= lengths[index]), None)
        if slot is None:
            bins.append([index])
            room.append(capacity - lengths[index])
        else:
            bins[slot].append(index)
            room[slot] -= lengths[index]
    return bins
