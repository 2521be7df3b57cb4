"""The generative training loop each Ray worker runs: packed batches, accumulation, resume.

Shared by the causal-LM (extraction) and instruct (chat) tasks: only how prepared rows
become token ids differs, and that comes in as the ``examples`` builder of the config.

Every worker builds the same examples and the same global batches and takes its rank's
slice, so the data position of a run is just (epoch, batch index) and a restart skips
exactly the batches already trained on. The loss is a sum over answer tokens divided by
the answer tokens of the whole optimizer step (all ranks, all micro-batches): each token
weighs the same whatever the packing, the accumulation or the number of workers.

A checkpoint (rank 0, every ``train.checkpoint_every`` optimizer steps and at the end)
holds the trainable tensors, optimizer, scheduler, RNG and data position. Ray Train hands
the latest one back after a worker dies (``FailureConfig``) or when a run is resumed.
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import tempfile
import time
import typing
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import ray.train
import ray.train.torch
import torch
from safetensors.torch import load_file, save_file
from torch.nn.parallel import DistributedDataParallel
from transformers import get_linear_schedule_with_warmup

from medops.data.dataset import read_split
from medops.errors import ConfigurationError
from medops.model.causal_lm import (
    autocast_dtype,
    load_causal_lm,
    load_tokenizer,
    load_trainable,
    trainable_tensors,
    weights_dtype,
)
from medops.model.chat import Tokenized
from medops.model.gguf_cache import CACHE_ENV
from medops.model.loss import answer_loss_sum
from medops.model.precision import cpu_has_bf16
from medops.privacy.canaries import canary_examples, make_canaries
from medops.recipe import PrivacyAudit, build_recipe
from medops.tasks.causal_lm.recipe import CausalLMRecipe
from medops.tasks.spec import load
from medops.train.batches import global_batches, shard
from medops.train.packing import collate_packed, collate_padded, pack
from medops.train.timing import PhaseClock

STATE_FILE = "trainable.safetensors"
OPTIMIZER_FILE = "optimizer.pt"
POSITION_FILE = "position.json"
# test hook: "<step>" makes the last rank SIGKILL itself after that optimizer step, once
FAULT_ENV = "MEDOPS_FAULT_KILL_AFTER_STEP"
FAULT_MARKER = "fault-injected"


@dataclass(frozen=True)
class Units:
    """What one batch row holds: a packed bin of examples, or a single example."""

    rows: list[list[Tokenized]]

    @property
    def lengths(self) -> list[int]:
        return [sum(len(e.input_ids) for e in row) for row in self.rows]

    def answer_tokens(self, indices: list[int]) -> int:
        return sum(e.answer_tokens for i in indices for e in self.rows[i])

    def tokens(self, indices: list[int]) -> int:
        return sum(self.lengths[i] for i in indices)


def make_units(examples: list[Tokenized], max_length: int, packing: bool) -> Units:
    if not packing:
        return Units([[e] for e in examples])
    return Units(
        [[examples[i] for i in b] for b in pack([len(e.input_ids) for e in examples], max_length)]
    )


def collate(
    units: Units, indices: list[int], pad_id: int, packing: bool
) -> dict[str, torch.Tensor]:
    rows = [units.rows[i] for i in indices]
    return collate_packed(rows, pad_id) if packing else collate_padded([r[0] for r in rows], pad_id)


def _micro_batches(units: Units, recipe: CausalLMRecipe, world: int, epoch: int) -> list[list[int]]:
    return global_batches(units.lengths, recipe.train.batch_size, world, recipe.seed, epoch)


def _steps(batches_per_epoch: int, recipe: CausalLMRecipe) -> int:
    total = math.ceil(batches_per_epoch / recipe.train.grad_accum) * recipe.train.epochs
    return min(total, recipe.train.max_steps or total)


def _restore(model: torch.nn.Module, optimizer: Any, scheduler: Any) -> dict[str, int]:
    """Load the latest checkpoint Ray hands back, if any; returns the data position."""
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        return {"epoch": 1, "batch": 0, "step": 0}
    with checkpoint.as_directory() as directory:
        load_trainable(model, load_file(str(Path(directory) / STATE_FILE)))
        saved = load_optimizer_state(Path(directory))
        position = json.loads((Path(directory) / POSITION_FILE).read_text())
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    torch.set_rng_state(saved["torch_rng"])
    rngs = position.pop("rng")
    random.setstate((rngs["python"][0], tuple(rngs["python"][1]), rngs["python"][2]))
    numpy = rngs["numpy"]
    np.random.set_state((numpy[0], np.array(numpy[1], dtype=np.uint32), *numpy[2:]))
    return position


def load_optimizer_state(directory: Path) -> dict[str, Any]:
    """Tensors and plain containers only (``weights_only``): a checkpoint directory is a
    file on shared storage, and unpickling arbitrary objects from it would run code."""
    return torch.load(directory / OPTIMIZER_FILE, weights_only=True)


def _rng_states() -> dict[str, Any]:
    """Python's and numpy's generator states as JSON (kept out of the tensor file)."""
    python = random.getstate()
    numpy = typing.cast(tuple[Any, ...], np.random.get_state())
    return {
        "python": [python[0], list(python[1]), python[2]],
        "numpy": [
            numpy[0],
            numpy[1].tolist(),
            *(x.item() if hasattr(x, "item") else x for x in numpy[2:]),
        ],
    }


def _report(
    metrics: dict[str, float],
    core: torch.nn.Module,
    optimizer: Any,
    scheduler: Any,
    position: dict[str, int],
    rank: int,
) -> None:
    """Every rank reports; rank 0 attaches the checkpoint."""
    if rank != 0:
        ray.train.report(metrics)
        return
    with tempfile.TemporaryDirectory() as tmp:
        save_file(trainable_tensors(core), str(Path(tmp) / STATE_FILE))
        torch.save(
            {
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "torch_rng": torch.get_rng_state(),
            },
            Path(tmp) / OPTIMIZER_FILE,
        )
        (Path(tmp) / POSITION_FILE).write_text(json.dumps({**position, "rng": _rng_states()}))
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))


def _maybe_fail(step: int, rank: int, world: int, marker_dir: str) -> None:
    """Kill this worker once, after optimizer step ``$MEDOPS_FAULT_KILL_AFTER_STEP`` (tests)."""
    wanted = os.environ.get(FAULT_ENV)
    marker = Path(marker_dir) / FAULT_MARKER
    if wanted and int(wanted) == step and rank == world - 1 and not marker.exists():
        marker.write_text(f"killed rank {rank} after step {step}\n")
        os.kill(os.getpid(), signal.SIGKILL)


def _validation_loss(s: _Session) -> float:
    """Mean answer-token loss on the validation rows (every rank computes the same)."""
    s.model.eval()
    total, tokens = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(s.val_units.rows), 8):
            indices = list(range(start, min(start + 8, len(s.val_units.rows))))
            total += float(answer_loss_sum(s.model, s.batch(s.val_units, indices)))
            tokens += s.val_units.answer_tokens(indices)
    s.model.train()
    return total / max(tokens, 1)


def _windows(
    batches: list[list[int]], accum: int, start: int
) -> Iterator[tuple[int, list[list[int]]]]:
    """(first batch index, micro-batches) of each optimizer step from batch ``start`` on."""
    for first in range(start, len(batches), accum):
        yield first, batches[first : first + accum]


@dataclass
class _Session:
    """Everything one worker trains with; built the same way on every rank."""

    recipe: CausalLMRecipe
    config: dict[str, Any]
    rank: int
    world: int
    device: torch.device
    cast: torch.dtype | None  # autocast dtype; None = fp32
    units: Units
    val_units: Units
    pad_id: int
    model: torch.nn.Module
    core: torch.nn.Module
    params: list[torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    scheduler: Any
    total_steps: int
    clock: PhaseClock

    def batch(self, units: Units, indices: list[int]) -> dict[str, torch.Tensor]:
        tensors = collate(units, indices, self.pad_id, self.recipe.lm.packing)
        return {k: v.to(self.device) for k, v in tensors.items()}


def _model_path(config: dict[str, Any]) -> str:
    """The base model the driver prepared, which must be on this worker's node too.

    The driver resolved ``model.base``: a GGUF base is converted into the model cache
    (``MEDOPS_MODEL_CACHE``), which the operator's RayJob puts on the shared volume. A
    worker cannot convert it itself: inside the torch process group transformers saves
    only on rank 0.
    """
    path = config["model_path"]
    if not Path(path).exists():
        raise ConfigurationError(
            f"the base model the driver prepared ({path}) is not on this Ray node: set "
            f"{CACHE_ENV} to a directory on a volume every node mounts (the operator's RayJob "
            "does), or give model.base as a path every node can read"
        )
    return path


def planted(settings: dict[str, Any] | None, seed: int, tokenizer: Any) -> list[Tokenized]:
    """The audit's canary examples (train split only), rebuilt from the seed on every rank
    from the config's ``privacy_audit`` settings; none without an audit."""
    if settings is None:
        return []
    audit = PrivacyAudit.model_validate(settings)
    return canary_examples(make_canaries(audit.canaries, seed), audit.canaries.repeats, tokenizer)


def _session(config: dict[str, Any]) -> _Session:
    # the instruct task trains with this loop too: its recipe and its example builder
    # ("module:function", as tasks name their code) come in the config
    recipe = typing.cast(CausalLMRecipe, build_recipe(config["recipe"]))
    build_examples = load(config["examples"])
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    torch.manual_seed(recipe.seed + rank)
    random.seed(recipe.seed)
    torch.set_num_threads(recipe.resources.cpus_per_worker)
    model_path = _model_path(config)
    tokenizer = load_tokenizer(model_path)
    prepared, max_length = Path(config["prepared_dir"]), recipe.model.max_length
    examples = {
        split: build_examples(read_split(prepared, split), tokenizer, recipe.lm, max_length)[0]
        for split in ("train", "validation")
    }
    examples["train"] += planted(config.get("privacy_audit"), recipe.seed, tokenizer)
    units = {
        split: make_units(examples[split], max_length, recipe.lm.packing)
        for split in ("train", "validation")
    }
    device = ray.train.torch.get_device()
    on_gpu = device.type == "cuda"
    native_bf16 = torch.cuda.is_bf16_supported() if on_gpu else cpu_has_bf16()
    cast = autocast_dtype(recipe.train.precision, on_gpu, native_bf16)
    base = load_causal_lm(model_path, recipe.train, weights_dtype(recipe.train, cast))
    base.train()  # from_pretrained returns eval mode: LoRA dropout would stay off
    model = ray.train.torch.prepare_model(base)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        params, lr=recipe.train.learning_rate, weight_decay=recipe.train.weight_decay
    )
    total = _steps(len(_micro_batches(units["train"], recipe, world, 1)), recipe)
    warmup = int(total * recipe.train.warmup_ratio)
    return _Session(
        recipe=recipe,
        config=config,
        rank=rank,
        world=world,
        device=device,
        cast=cast,
        units=units["train"],
        val_units=units["validation"],
        pad_id=tokenizer.pad_token_id,
        model=model,
        # the model itself, under .module where prepare_model wrapped it in DDP
        core=typing.cast(torch.nn.Module, model.module if hasattr(model, "module") else model),
        params=params,
        optimizer=optimizer,
        scheduler=get_linear_schedule_with_warmup(optimizer, warmup, total),
        total_steps=total,
        clock=PhaseClock(),
    )


def _optimizer_step(session: _Session, window: list[list[int]]) -> tuple[float, int]:
    """Forward/backward every micro-batch of one step, then step; returns (loss, tokens)."""
    s = session
    cast = s.cast
    denominator = sum(s.units.answer_tokens(b) for b in window)
    loss_value, tokens = 0.0, 0
    s.clock.start()
    for micro in window:
        batch = s.batch(s.units, shard(micro, s.rank, s.world))
        s.clock.lap("data")
        # gradients are all-reduced once per step, on its last micro-batch
        last = micro is window[-1]
        sync = (
            nullcontext()
            if last or not hasattr(s.model, "no_sync")
            else typing.cast(DistributedDataParallel, s.model).no_sync()  # wrapped by prepare_model
        )
        with sync, torch.autocast(s.device.type, dtype=cast, enabled=cast is not None):
            loss = answer_loss_sum(s.model, batch) * s.world / denominator
            s.clock.lap("forward")
            loss.backward()
        loss_value += float(loss.detach()) / s.world  # this rank's share of the step loss
        tokens += s.units.tokens(micro)
        s.clock.lap("backward")
    torch.nn.utils.clip_grad_norm_(s.params, 1.0)
    s.optimizer.step()
    s.scheduler.step()
    s.optimizer.zero_grad(set_to_none=True)
    s.clock.lap("optimizer")
    return _global_sum(loss_value, s.world, s.device), tokens


def _global_sum(value: float, world: int, device: torch.device) -> float:
    """Each rank holds its shard's share of the step loss; the step loss is their sum."""
    if world == 1 or not torch.distributed.is_initialized():
        return value
    total = torch.tensor([value], dtype=torch.float64, device=device)  # NCCL wants CUDA
    torch.distributed.all_reduce(total)
    return float(total.item())


def _next_position(epoch: int, next_batch: int, batches: int, step: int) -> dict[str, int]:
    if next_batch >= batches:
        return {"epoch": epoch + 1, "batch": 0, "step": step}
    return {"epoch": epoch, "batch": next_batch, "step": step}


def train_lm_loop(config: dict[str, Any]) -> None:
    """One worker: restore, train optimizer steps, report and checkpoint, until done."""
    s = _session(config)
    position = _restore(s.core, s.optimizer, s.scheduler)
    if s.rank == 0 and position["step"]:
        print(f"train: resumed after step {position['step']}/{s.total_steps}", flush=True)
    every = s.recipe.train.checkpoint_every
    step, started, tokens_seen, losses = position["step"], time.perf_counter(), 0, []
    # ``losses`` holds the steps since the last report: the reported train_loss covers them
    for epoch in range(position["epoch"], s.recipe.train.epochs + 1):
        batches = _micro_batches(s.units, s.recipe, s.world, epoch)
        start = position["batch"] if epoch == position["epoch"] else 0
        for first, window in _windows(batches, s.recipe.train.grad_accum, start):
            if step >= s.total_steps:
                return
            loss, tokens = _optimizer_step(s, window)
            step, tokens_seen = step + 1, tokens_seen + tokens
            losses.append(loss)
            if s.rank == 0:
                print(f"train: step {step}/{s.total_steps} loss {loss:.4f}", flush=True)
                if config.get("mlflow_run_id"):
                    _log(config, {"train_loss": loss, "lr": s.scheduler.get_last_lr()[0]}, step)
            after = _next_position(epoch, first + len(window), len(batches), step)
            last, epoch_end = step >= s.total_steps, after["batch"] == 0
            if (every and step % every == 0) or last or (not every and epoch_end):
                metrics = {
                    "step": step,
                    "total_steps": s.total_steps,
                    "epoch": epoch,
                    "train_loss": float(np.mean(losses)),
                    "tokens_per_second": tokens_seen / (time.perf_counter() - started),
                    **s.clock.metrics(),
                }
                if last or epoch_end:
                    metrics["val_loss"] = _validation_loss(s)
                _announce(s, metrics)
                _report(metrics, s.core, s.optimizer, s.scheduler, after, s.rank)
                losses = []
            _maybe_fail(step, s.rank, s.world, config["storage"])


def _announce(s: _Session, metrics: dict[str, float]) -> None:
    if s.rank != 0:
        return
    val = f" val loss {metrics['val_loss']:.4f}" if "val_loss" in metrics else ""
    print(
        f"train: checkpoint at step {metrics['step']}/{s.total_steps}, mean loss "
        f"{metrics['train_loss']:.4f}{val} ({metrics['tokens_per_second']:.0f} tokens/s)",
        flush=True,
    )
    if s.config.get("mlflow_run_id") and "val_loss" in metrics:
        _log(s.config, {"val_loss": metrics["val_loss"]}, int(metrics["step"]))


def _log(config: dict[str, Any], metrics: dict[str, float], step: int) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=config["tracking_uri"])
    for key, value in metrics.items():
        client.log_metric(config["mlflow_run_id"], key, value, step=step)
