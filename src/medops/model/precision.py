"""Which dtype to serve weights in: bf16 only where the CPU computes it natively.

bf16 matmuls go through oneDNN's AMX / AVX512-BF16 kernels on CPUs that have them and can
be several times faster than fp32; elsewhere (AVX2 only) PyTorch emulates bf16 and it is
slower. ``auto`` reads the CPU's flags (or the GPU's support) instead of assuming.
"""

from __future__ import annotations

from pathlib import Path

import torch

BF16_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_has_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    flags = next(
        (line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")),
        [],
    )
    return any(flag in flags for flag in BF16_FLAGS)


def serving_dtype(choice: str) -> torch.dtype:
    """``fp32`` / ``bf16`` as asked; ``auto``: bf16 on a bf16 GPU or a bf16-native CPU."""
    if choice == "fp32":
        return torch.float32
    if choice == "bf16":
        return torch.bfloat16
    if torch.cuda.is_available():
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    return torch.bfloat16 if cpu_has_bf16() else torch.float32
