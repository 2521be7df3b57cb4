"""The per-worker training loop that Ray Train runs on every worker (DDP over gloo/NCCL)."""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path
from typing import Any, cast

import numpy as np
import ray.train
import ray.train.torch
import torch
from safetensors.torch import save_file
from sklearn.metrics import f1_score
from transformers import get_linear_schedule_with_warmup

from medops.data.dataset import read_split
from medops.model.adapters import PooledClassifier, adapt, trainable_state
from medops.model.encoder import load_encoder
from medops.tasks.classification.recipe import ClassificationRecipe
from medops.train.batches import global_batches, shard

STATE_FILE = "trainable.safetensors"


def _encode(tokenizer: Any, texts: list[str], max_length: int) -> list[list[int]]:
    return tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]


def _collate(ids: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for row, seq in enumerate(ids):
        input_ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
    return input_ids, mask


def _validate(
    model: torch.nn.Module, ids: list[list[int]], y: np.ndarray, pad_id: int, loss_fn: Any
) -> dict[str, float]:
    model.eval()
    logits = []
    with torch.inference_mode():
        for start in range(0, len(ids), 32):
            input_ids, mask = _collate(ids[start : start + 32], pad_id)
            logits.append(model(input_ids, mask))
    model.train()
    stacked = torch.cat(logits)
    loss = float(loss_fn(stacked, torch.from_numpy(y)).item())
    predicted = stacked.argmax(dim=1).numpy()
    return {
        "val_loss": loss,
        "val_macro_f1": float(f1_score(y, predicted, average="macro", zero_division=0)),
        "val_accuracy": float((predicted == y).mean()),
    }


def train_loop(config: dict[str, Any]) -> None:
    """One worker: adapt the encoder, run epochs over its shard, report and checkpoint."""
    recipe = ClassificationRecipe.model_validate(config["recipe"])
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    torch.manual_seed(recipe.seed)
    torch.set_num_threads(recipe.resources.cpus_per_worker)

    labels: list[str] = config["labels"]
    index = {name: i for i, name in enumerate(labels)}
    encoder, tokenizer = load_encoder(config["base_path"])
    model: torch.nn.Module = PooledClassifier(
        adapt(encoder, recipe.train),
        np.asarray(config["head_weight"], dtype=np.float32),
        np.asarray(config["head_bias"], dtype=np.float32),
    )
    model = ray.train.torch.prepare_model(model)
    # the classifier itself, under .module where prepare_model wrapped it in DDP
    core = cast(PooledClassifier, model.module if hasattr(model, "module") else model)

    prepared = Path(config["prepared_dir"])
    train_rows, val_rows = read_split(prepared, "train"), read_split(prepared, "validation")
    max_length = recipe.model.max_length
    train_ids = _encode(tokenizer, [r["text"] for r in train_rows], max_length)
    train_y = torch.tensor([index[r["label"]] for r in train_rows])
    val_ids = _encode(tokenizer, [r["text"] for r in val_rows], max_length)
    val_y = np.array([index[r["label"]] for r in val_rows])
    pad_id = tokenizer.pad_token_id or 0

    weights = torch.tensor(config["class_weights"], dtype=torch.float32)
    loss_fn = torch.nn.CrossEntropyLoss(weight=weights)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        params, lr=recipe.train.learning_rate, weight_decay=recipe.train.weight_decay
    )
    steps_per_epoch = math.ceil(len(train_ids) / recipe.train.batch_size)
    total = steps_per_epoch * recipe.train.epochs
    scheduler = get_linear_schedule_with_warmup(
        optimizer, int(total * recipe.train.warmup_ratio), total
    )
    lengths = [len(x) for x in train_ids]
    for epoch in range(1, recipe.train.epochs + 1):
        epoch_start = time.perf_counter()
        model.train()
        losses = []
        for batch in global_batches(lengths, recipe.train.batch_size, world, recipe.seed, epoch):
            mine = shard(batch, rank, world)
            input_ids, mask = _collate([train_ids[i] for i in mine], pad_id)
            loss = loss_fn(model(input_ids, mask), train_y[mine])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            losses.append(float(loss.item()))
        metrics = {"epoch": epoch, "train_loss": float(np.mean(losses))}
        metrics.update(_validate(model, val_ids, val_y, pad_id, loss_fn))
        if rank != 0:
            ray.train.report(metrics)
            continue
        print(
            f"train: epoch {epoch}/{recipe.train.epochs} loss {metrics['train_loss']:.4f} "
            f"val macro-F1 {metrics['val_macro_f1']:.4f} "
            f"({time.perf_counter() - epoch_start:.0f} s)",
            flush=True,
        )
        if config.get("mlflow_run_id"):
            _log_epoch(config["tracking_uri"], config["mlflow_run_id"], metrics, epoch)
        with tempfile.TemporaryDirectory() as tmp:
            save_file(trainable_state(core, recipe.train), str(Path(tmp) / STATE_FILE))
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))


def _log_epoch(tracking_uri: str, run_id: str, metrics: dict[str, float], epoch: int) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    for key, value in metrics.items():
        if key != "epoch":
            client.log_metric(run_id, key, value, step=epoch)
