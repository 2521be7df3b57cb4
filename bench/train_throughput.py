"""Benchmark: medops' causal-LM training loop vs a plain transformers Trainer, and Ray's cost.

Arms, all in this one command on this machine and moment (so every ratio is measured against
a baseline run beside it):

(a) ``medops_local``: ``medops.tasks.causal_lm.loop.train_lm_loop`` (packed rows, answer-only loss)
    under Ray Train V2's local mode (``ScalingConfig(num_workers=0)``): the loop runs in this
    process with the ``ray.train`` API working, and no Ray cluster is started.
(b) ``trainer_baseline``: transformers ``Trainer`` + peft ``get_peft_model``, one example per
    row, padded per batch by ``DataCollatorForSeq2Seq``: what one writes without medops.
(c) ``medops_ray``: the same loop through ``medops.train.launcher.fit`` on one Ray worker
    with both CPUs, so its compute is (a)'s and the difference is Ray's overhead (cluster and
    actor start, report and checkpoint round trips). ``medops_ray_2workers`` (two workers,
    one CPU each, DDP over gloo) is extra information, not a target.

Why the comparison is fair: every arm trains the same base model (SmolLM2-135M-Instruct of
``recipes/extraction-demo.yaml``, fp32) with the same LoRA config and initial seed, on the
same first N examples ``build_examples`` makes from the same de-identified reviews (same
token ids, loss on the answer only), for one epoch of the same number of optimizer steps,
with the same AdamW (lr, weight decay, clipping), linear schedule and warmup steps, on 2 CPU
threads in total. The steps are equalised by batch size: N examples pack into R rows of at
most ``model.max_length`` tokens; medops takes ceil(R / S) rows per step and Trainer N / S
examples per step, so both see every example exactly once in S steps. Throughput counts real
tokens only (never padding) over training time only. "Comparable loss" is checked by one
held-out measure for every arm: the mean answer-token loss of the trained weights on the
same validation examples, computed here with the loop's own ``answer_loss_sum`` and
``collate``. Writes ``bench/results/train_throughput.json`` (``--smoke``: a ``.smoke.json``
beside it, so a smoke run never overwrites the real figures).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import peft
import ray
import ray.train
import torch
import transformers
from peft import LoraConfig, get_peft_model
from ray.train import RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer
from safetensors.torch import load_file
from transformers import (
    AutoModelForCausalLM,
    DataCollatorForSeq2Seq,
    Trainer,
    TrainingArguments,
)

from medops.data.dataset import read_split
from medops.model.base import resolve_base
from medops.model.causal_lm import load_causal_lm, load_tokenizer, load_trainable
from medops.model.chat import Tokenized
from medops.recipe import Recipe, load_recipe
from medops.stages import run_stage
from medops.tasks.causal_lm.examples import build_examples
from medops.tasks.causal_lm.loop import STATE_FILE, Units, answer_loss_sum, collate, make_units
from medops.tasks.causal_lm.loop import train_lm_loop as medops_loop
from medops.train.batches import global_batches, shard
from medops.train.launcher import fit

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "extraction-demo.yaml"
RESULTS = Path(__file__).parent / "results" / "train_throughput.json"
SMOKE_RESULTS = RESULTS.with_suffix(".smoke.json")
THREADS = 2  # every arm trains on 2 CPU threads in total
RATIO_MIN, OVERHEAD_MAX_PCT = 1.3, 10.0
VAL_BATCH_ROWS = 8  # as the loop's own validation
STARTED = time.perf_counter()


def _say(message: str) -> None:
    print(f"[{time.perf_counter() - STARTED:7.1f}s] {message}", flush=True)


def _recipe(extra: list[str]) -> Recipe:
    """The demo recipe, one fp32 epoch, one checkpoint at its end, no retries."""
    return load_recipe(
        RECIPE,
        [
            "train.epochs=1",
            "train.precision=fp32",
            "train.checkpoint_every=0",
            "train.grad_accum=1",
            "resources.max_failures=0",
            *extra,
        ],
    )


def _subset(
    prepared: Path, out: Path, tokenizer: Any, recipe: Recipe, counts: dict[str, int]
) -> dict[str, list[Tokenized]]:
    """Write the rows of the first N kept examples of each split, so the loop builds exactly
    the examples the Trainer arm gets (``build_examples`` is deterministic)."""
    out.mkdir(parents=True, exist_ok=True)
    examples: dict[str, list[Tokenized]] = {}
    for split, wanted in counts.items():
        rows, kept = [], []
        for row in read_split(prepared, split):
            built = build_examples([row], tokenizer, recipe.lm, recipe.model.max_length)[0]
            if built:
                rows.append(row)
                kept.extend(built)
            if len(kept) == wanted:
                break
        if len(kept) < wanted:
            raise SystemExit(f"{split}: only {len(kept)} usable examples, {wanted} asked for")
        with (out / f"{split}.jsonl").open("w", encoding="utf-8") as handle:
            handle.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        rebuilt = build_examples(rows, tokenizer, recipe.lm, recipe.model.max_length)[0]
        assert [e.input_ids for e in rebuilt] == [e.input_ids for e in kept]
        examples[split] = kept
    return examples


def _padded_tokens(units: Units, batches: list[list[int]], world: int) -> int:
    """Tokens the loop's forward passes process, padding included (each rank pads its shard)."""
    total = 0
    for batch in batches:
        for rank in range(world):
            rows = shard(batch, rank, world)
            total += len(rows) * max(units.lengths[i] for i in rows)
    return total


def _plan(train: list[Tokenized], recipe: Recipe, steps: int) -> dict[str, Any]:
    """Rows per medops step so that one epoch of packed rows is exactly ``steps`` steps."""
    units = make_units(train, recipe.model.max_length, packing=True)
    rows = len(units.rows)
    batch_rows = max(2, math.ceil(rows / steps))
    plan: dict[str, Any] = {"units": units, "packed_rows": rows, "batch_rows": batch_rows}
    for world in (1, 2):
        batches = global_batches(units.lengths, batch_rows, world, recipe.seed, 1)
        plan[f"steps_world{world}"] = len(batches)
        plan[f"padded_world{world}"] = _padded_tokens(units, batches, world)
    if plan["steps_world1"] != steps:
        raise SystemExit(
            f"{len(train)} examples pack into {rows} rows: no rows-per-step gives exactly "
            f"{steps} steps; use more --examples or fewer --steps"
        )
    return plan


def _val_loss(model: torch.nn.Module, val: Units, pad_id: int) -> float:
    """Mean answer-token loss on the validation examples: the loop's own measure, for all."""
    model.eval()
    total, tokens = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(val.rows), VAL_BATCH_ROWS):
            indices = list(range(start, min(start + VAL_BATCH_ROWS, len(val.rows))))
            total += float(answer_loss_sum(model, collate(val, indices, pad_id, True)))
            tokens += val.answer_tokens(indices)
    return total / max(tokens, 1)


@contextmanager
def _persisted_reports(keep: Path) -> Iterator[None]:
    """Keep the local-mode checkpoint: local mode stores only a handle to the directory the
    loop reports, and the loop deletes it right after; copy it out first, as Ray's upload to
    ``storage_path`` does. Runs after the loop has measured its tokens/s."""
    original = ray.train.report

    def report(metrics: dict[str, Any], checkpoint: Any = None, **kwargs: Any) -> None:
        if checkpoint is not None:
            target = keep / f"checkpoint_{len(list(keep.iterdir())):06d}"
            shutil.copytree(checkpoint.path, target)
            checkpoint = ray.train.Checkpoint.from_directory(str(target))
        original(metrics, checkpoint=checkpoint, **kwargs)

    with mock.patch.object(ray.train, "report", report):
        yield


def _loop_config(recipe: Recipe, model_path: str, prepared: Path, storage: Path) -> dict:
    return {
        "recipe": recipe.to_dict(),
        "model_path": model_path,
        "prepared_dir": str(prepared),
        "storage": str(storage),  # no tracking_uri / mlflow_run_id: MLflow stays off
        "examples": "medops.tasks.causal_lm.examples:build_examples",
    }


def _run_local(recipe: Recipe, model_path: str, prepared: Path, work: Path) -> Any:
    storage = Path(tempfile.mkdtemp(dir=work, prefix="local-"))
    trainer = TorchTrainer(
        medops_loop,
        train_loop_config=_loop_config(recipe, model_path, prepared, storage),
        scaling_config=ScalingConfig(num_workers=0),
        run_config=RunConfig(name="bench-local", storage_path=str(storage)),
    )
    with _persisted_reports(storage):
        return trainer.fit()


def _run_ray(recipe: Recipe, model_path: str, prepared: Path, work: Path) -> Any:
    storage = Path(tempfile.mkdtemp(dir=work, prefix="ray-"))
    return fit(recipe, _loop_config(recipe, model_path, prepared, storage), storage, medops_loop)


def _medops_arm(
    name: str,
    run: Callable[[], Any],
    recipe: Recipe,
    model_path: str,
    real_tokens: int,
    padded_tokens: int,
    val: Units,
    pad_id: int,
) -> dict[str, Any]:
    """Run the loop one way; throughput from its own report, val loss from its checkpoint."""
    _say(f"{name}: training")
    started = time.perf_counter()
    result = run()
    wall = time.perf_counter() - started
    metrics = result.metrics
    tokens_per_second = float(metrics["tokens_per_second"])
    _say(f"{name}: {tokens_per_second:.1f} tokens/s, evaluating its checkpoint")
    torch.set_num_threads(THREADS)
    model = load_causal_lm(model_path, recipe.train)
    with result.checkpoint.as_directory() as directory:
        load_trainable(model, load_file(str(Path(directory) / STATE_FILE)))
    arm = {
        "seconds_train": round(real_tokens / tokens_per_second, 2),
        "seconds_wall": round(wall, 2),
        "real_tokens": real_tokens,
        "padded_tokens_processed": padded_tokens,
        "tokens_per_second": round(tokens_per_second, 2),
        "steps": int(metrics["step"]),
        "final_train_loss": round(float(metrics["train_loss"]), 4),
        "val_loss": round(_val_loss(model, val, pad_id), 4),
        "loop_val_loss": round(float(metrics["val_loss"]), 4),
        "workers": 0 if name == "medops_local" else recipe.resources.num_workers,
        "cpus_per_worker": recipe.resources.cpus_per_worker,
    }
    del model, result
    gc.collect()
    return arm


class _CountingTrainer(Trainer):
    """Trainer that counts the tokens of every batch it trains on (real and padded)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.real_tokens = 0
        self.padded_tokens = 0

    def training_step(
        self, model: torch.nn.Module, inputs: dict[str, Any], num_items_in_batch: Any = None
    ) -> torch.Tensor:
        self.real_tokens += int(inputs["attention_mask"].sum())
        self.padded_tokens += inputs["input_ids"].numel()
        return super().training_step(model, inputs, num_items_in_batch)


def _trainer_arm(
    recipe: Recipe,
    model_path: str,
    train: list[Tokenized],
    steps: int,
    val: Units,
    work: Path,
) -> dict[str, Any]:
    """The baseline as one writes it with transformers + peft: per-batch padding."""
    _say("trainer_baseline: training")
    started = time.perf_counter()
    torch.set_num_threads(THREADS)
    tokenizer = load_tokenizer(model_path)
    tokenizer.padding_side = "right"
    torch.manual_seed(recipe.seed)  # the loop seeds the same way before it builds LoRA
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    model.config.use_cache = False
    lora = recipe.train.lora
    model = get_peft_model(
        model,
        LoraConfig(
            r=lora.r,
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            target_modules=list(lora.targets),
            bias="none",
            task_type="CAUSAL_LM",
        ),
    )
    dataset = [
        {"input_ids": e.input_ids, "attention_mask": [1] * len(e.input_ids), "labels": e.labels}
        for e in train
    ]
    args = TrainingArguments(
        output_dir=str(work / "trainer"),
        use_cpu=True,
        report_to=[],
        max_steps=steps,
        per_device_train_batch_size=len(train) // steps,
        learning_rate=recipe.train.learning_rate,
        weight_decay=recipe.train.weight_decay,
        max_grad_norm=1.0,
        optim="adamw_torch",  # the loop's torch.optim.AdamW
        lr_scheduler_type="linear",
        warmup_steps=int(steps * recipe.train.warmup_ratio),  # the loop's rounding
        logging_steps=1,
        save_strategy="no",
        dataloader_num_workers=0,
        disable_tqdm=True,
        seed=recipe.seed,
    )
    trainer = _CountingTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100),
    )
    train_started = time.perf_counter()
    output = trainer.train()
    seconds = time.perf_counter() - train_started
    wall = time.perf_counter() - started
    step_losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    _say(f"trainer_baseline: {trainer.real_tokens / seconds:.1f} tokens/s, evaluating")
    arm = {
        "seconds_train": round(seconds, 2),
        "seconds_wall": round(wall, 2),
        "real_tokens": trainer.real_tokens,
        "padded_tokens_processed": trainer.padded_tokens,
        "tokens_per_second": round(trainer.real_tokens / seconds, 2),
        "steps": trainer.state.global_step,
        "final_train_loss": round(float(output.training_loss), 4),
        "last_step_train_loss": round(float(step_losses[-1]), 4) if step_losses else None,
        "val_loss": round(_val_loss(trainer.model, val, tokenizer.pad_token_id), 4),
        "examples_per_step": args.per_device_train_batch_size,
    }
    del trainer, model
    gc.collect()
    return arm


def _pct(slow: float, fast: float) -> float:
    return round(100.0 * (slow - fast) / fast, 2)


def _machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "processor": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": THREADS,
        "load_average_1m_at_start": round(os.getloadavg()[0], 2),
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "peft": peft.__version__,
            "ray": ray.__version__,
        },
    }


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=96, help="training examples (N)")
    parser.add_argument("--steps", type=int, default=6, help="optimizer steps (S), one epoch")
    parser.add_argument("--val-examples", type=int, default=24, help="held-out examples")
    parser.add_argument("--skip-two-workers", action="store_true", help="no 2-worker Ray arm")
    parser.add_argument("--smoke", action="store_true", help="16 examples, 2 steps, 8 val")
    args = parser.parse_args()
    if args.smoke:
        args.examples, args.steps, args.val_examples = 16, 2, 8
    if args.examples % args.steps:
        parser.error("--examples must be a multiple of --steps (Trainer's batch is N / S)")
    return args


def main() -> None:
    args = _arguments()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_TRAIN_ENABLE_PRINT_PATCH", "0")
    machine = _machine()
    base = _recipe([])
    model_path = resolve_base(base.model.base)
    tokenizer = load_tokenizer(model_path)
    with tempfile.TemporaryDirectory(prefix="medops-bench-") as tmp:
        work = Path(tmp)
        _say("prepare: de-identifying the demo reviews")
        run_stage("prepare", base, work / "prepare", {})
        counts = {"train": args.examples, "validation": args.val_examples}
        examples = _subset(work / "prepare", work / "subset", tokenizer, base, counts)
        plan = _plan(examples["train"], base, args.steps)
        val = make_units(examples["validation"], base.model.max_length, packing=True)
        real_tokens = sum(len(e.input_ids) for e in examples["train"])
        _say(
            f"{args.examples} examples ({real_tokens} tokens) -> {plan['packed_rows']} packed "
            f"rows, {plan['batch_rows']} rows/step; Trainer {args.examples // args.steps} "
            f"examples/step; {args.steps} steps each"
        )
        common = [f"train.max_steps={args.steps}", f"train.batch_size={plan['batch_rows']}"]
        local = _recipe(
            [*common, "resources.num_workers=1", f"resources.cpus_per_worker={THREADS}"]
        )
        prepared, pad = work / "subset", tokenizer.pad_token_id

        def medops(name: str, recipe: Recipe, runner: Callable[..., Any], world: int) -> dict:
            return _medops_arm(
                name,
                lambda: runner(recipe, model_path, prepared, work),
                recipe,
                model_path,
                real_tokens,
                plan[f"padded_world{world}"],
                val,
                pad,
            )

        arms = {"medops_local": medops("medops_local", local, _run_local, 1)}
        arms["trainer_baseline"] = _trainer_arm(
            base, model_path, examples["train"], args.steps, val, work
        )
        arms["medops_ray"] = medops("medops_ray", local, _run_ray, 1)
        if not args.skip_two_workers and plan["steps_world2"] == args.steps:
            two = _recipe([*common, "resources.num_workers=2", "resources.cpus_per_worker=1"])
            arms["medops_ray_2workers"] = medops("medops_ray_2workers", two, _run_ray, 2)
    a, b, c = arms["medops_local"], arms["trainer_baseline"], arms["medops_ray"]
    ratio = round(a["tokens_per_second"] / b["tokens_per_second"], 3)
    overhead = _pct(c["seconds_train"], a["seconds_train"])
    machine["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
    result = {
        "benchmark": "train_throughput",
        "what": "LoRA fine-tuning of SmolLM2-135M-Instruct (recipes/extraction-demo.yaml) on "
        "de-identified drug reviews, fp32 on CPU",
        "medops": "medops.tasks.causal_lm.loop.train_lm_loop: packed rows, answer-only loss",
        "baseline": "transformers Trainer + peft get_peft_model, per-batch padding "
        "(DataCollatorForSeq2Seq), same examples, LoRA, optimizer, schedule, steps",
        "throughput": "real (non-padding) tokens trained on / training seconds; medops: the "
        "loop's own tokens_per_second (optimizer steps only); Trainer: trainer.train()",
        "val_loss": "mean answer-token loss of each arm's trained weights on the same held-out "
        "examples (lm_loop.answer_loss_sum, packed collate), computed after training",
        "final_train_loss": "mean training loss over all steps (the loop's report; Trainer's "
        "training_loss)",
        "seconds_wall": "whole call: medops arms = model load, example build, training, "
        "in-loop validation, checkpoint (+ Ray start and stop on Ray); Trainer = model load "
        "and train()",
        "machine": machine,
        "settings": {
            "smoke": args.smoke,
            "examples": args.examples,
            "val_examples": args.val_examples,
            "steps": args.steps,
            "epochs": 1,
            "max_length": base.model.max_length,
            "packed_rows": plan["packed_rows"],
            "medops_rows_per_step": plan["batch_rows"],
            "trainer_examples_per_step": args.examples // args.steps,
            "step_equalisation": "one epoch each: N examples pack into R rows, medops takes "
            "ceil(R/S) rows per step, Trainer N/S examples per step, both S steps",
            "learning_rate": base.train.learning_rate,
            "weight_decay": base.train.weight_decay,
            "warmup_steps": int(args.steps * base.train.warmup_ratio),
            "lora": base.train.lora.model_dump(),
            "precision": "fp32",
            "seed": base.seed,
        },
        "arms": arms,
        "ratio_medops_vs_trainer": ratio,
        "val_loss_medops_minus_trainer": round(a["val_loss"] - b["val_loss"], 4),
        "ray_overhead_pct": overhead,
        "ray_overhead_pct_basis": "training-loop time (real tokens / the loop's tokens/s) of "
        "medops_ray (1 worker, 2 CPUs) vs medops_local",
        "ray_overhead_wall_pct": _pct(c["seconds_wall"], a["seconds_wall"]),
        "targets": {
            "ratio_min": RATIO_MIN,
            "overhead_max_pct": OVERHEAD_MAX_PCT,
            "ratio_met": ratio >= RATIO_MIN,
            "overhead_met": overhead <= OVERHEAD_MAX_PCT,
        },
    }
    if "medops_ray_2workers" not in arms:
        result["medops_ray_2workers_skipped"] = (
            "--skip-two-workers"
            if args.skip_two_workers
            else f"2 workers would take {plan['steps_world2']} steps, not {args.steps}"
        )
    path = SMOKE_RESULTS if args.smoke else RESULTS
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))
    _say(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
