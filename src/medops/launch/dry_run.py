"""``medops train --dry-run``: everything training builds, except the weights and the training.

An 8B run fails expensively on a GPU cluster for reasons visible on a laptop: a LoRA target
that names no module, a batch the workers cannot split, a model that cannot fit. So the
architecture is built from its config.json on PyTorch's meta device (shapes, no memory),
adapters are attached exactly as training attaches them, the Ray Train scaling config and,
with ``cluster.training: finetune``, the operator's RayJob are built, and nothing is loaded
or downloaded. Memory figures are estimates from shapes, with their formula in ``notes``.
"""

from __future__ import annotations

import math
import typing
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, PretrainedConfig, PreTrainedModel

from medops.errors import ConfigurationError, MedopsError, MissingInputError
from medops.model.adapters import adapt
from medops.model.base import resolve_base
from medops.model.causal_lm import autocast_dtype, load_tokenizer, weights_dtype
from medops.model.precision import cpu_has_bf16
from medops.recipe import Recipe
from medops.tasks import task_of
from medops.tasks.causal_lm.recipe import CausalLMRecipe

GIB = 1024**3
NF4_BYTES = 0.5 + 0.127 / 8  # 4-bit NF4 plus double-quantised block scales, per parameter
GRAD_ADAMW_BYTES = 4 + 8  # fp32 gradient, AdamW's two fp32 moments
DDP_BUCKET_BYTES = 4  # DDP's gradient buckets: another fp32 copy of the gradients
LOGIT_BYTES = 10  # per token and vocabulary entry: bf16 logits, fp32 upcast, fp32 log-softmax
CHECKPOINTED_FACTOR = 2  # each layer's input, plus about one layer recomputed in backward
FULL_FACTOR = 17  # 34 bytes at 16 bit per token, hidden unit and layer (Korthikanti 2022)
CUDA_CONTEXT_GIB = 2.0
DETECT_MAX_BYTES = 256 * 1024**2  # a conversation file read whole to detect its format

NOTES = (
    "Estimates from shapes, not measurements; DDP gives every worker all of it. "
    "weights: each parameter in the dtype training loads it in (causal_lm.weights_dtype: "
    "LoRA keeps the frozen base in the autocast dtype, adapters and full fine-tuning in "
    f"float32); qlora: Linear weights at {NF4_BYTES:.3f} bytes (NF4 + double-quantised "
    "scales), the rest float32. trainable_state: trainable parameters x (4 gradient + 8 "
    "AdamW, + 4 DDP bucket when num_workers > 1) bytes. activations: micro-batch tokens per worker "
    "(batch.rows_per_worker_max x max_length) x hidden_size x num_hidden_layers x bytes of "
    "the residual stream (the weights' dtype) x 2 with gradient checkpointing (layer inputs "
    "+ one recomputed layer) or x 17 without (34 bytes per token, hidden unit and layer at "
    "16 bit, Korthikanti et al. 2022, attention scores excluded: a coarse rule of thumb). "
    f"logits: tokens x vocab_size x {LOGIT_BYTES} bytes (bf16 logits, fp32 upcast, fp32 "
    f"log-softmax). cuda_context: {CUDA_CONTEXT_GIB:g} GiB with a GPU. Not counted: "
    "allocator fragmentation, optimizer temporaries, NCCL buffers."
)


def _config(recipe: CausalLMRecipe) -> tuple[PretrainedConfig, str]:
    """The architecture's config, read from this machine only: ``model.config`` or the base's."""
    if recipe.model.config:
        path = Path(recipe.model.config).expanduser()
        if not path.exists():
            raise MissingInputError(
                f"model.config {recipe.model.config!r} does not exist (a relative path is read "
                f"from the current directory, {Path.cwd()})"
            )
        return AutoConfig.from_pretrained(str(path), local_files_only=True), str(path)
    source = resolve_base(recipe.model.base)
    try:
        return AutoConfig.from_pretrained(source, local_files_only=True), source
    except OSError:
        raise MissingInputError(
            f"model.base {recipe.model.base!r} is not on this machine (neither a directory nor "
            "in the Hugging Face cache), so its architecture is unknown: set model.config to "
            "its config.json, e.g. recipes/models/llama-3.1-8b-instruct/config.json"
        ) from None


def _check_targets(model: PreTrainedModel, targets: list[str]) -> dict[str, int]:
    """How many modules each LoRA target names, as peft matches them (name or name suffix).

    peft refuses only a list of which nothing matches; one bad name among good ones would
    silently train fewer adapters.
    """
    names = [name for name, _ in model.named_modules()]
    counts = {t: sum(n == t or n.endswith(f".{t}") for n in names) for t in targets}
    missing = [t for t, count in counts.items() if not count]
    if missing:
        linear = sorted(
            {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, nn.Linear)}
        )
        raise ConfigurationError(
            f"train.lora.targets: {', '.join(map(repr, missing))} matches no module of "
            f"{type(model).__name__}; its Linear modules are {', '.join(linear)}"
        )
    return counts


def _quantised(model: PreTrainedModel) -> int:
    """Parameters bitsandbytes stores in 4 bit: Linear weights except the output head."""
    head = model.get_output_embeddings()
    return sum(
        m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear) and m is not head
    )


def _batch(recipe: CausalLMRecipe) -> dict[str, Any]:
    train, workers = recipe.train, recipe.resources.num_workers
    if train.batch_size < workers:
        raise ConfigurationError(
            f"train.batch_size {train.batch_size} is smaller than resources.num_workers "
            f"{workers}: every worker needs a row of each micro-step"
        )
    step_tokens = train.batch_size * train.grad_accum * recipe.model.max_length
    return {
        "global_rows_per_micro_step": train.batch_size,
        "rows_per_worker": math.ceil(train.batch_size / workers),
        # an epoch's short last batch joins the one before it: up to workers - 1 more rows
        "rows_per_worker_max": math.ceil((train.batch_size + workers - 1) / workers),
        "grad_accum": train.grad_accum,
        "max_length": recipe.model.max_length,
        "packing": recipe.lm.packing,
        "tokens_per_optimizer_step_max": step_tokens,
    }


def _memory(
    recipe: CausalLMRecipe,
    config: PretrainedConfig,
    model: nn.Module,
    quantised: int,
    batch: dict[str, Any],
    gpu_memory_gib: float,
    dtype: torch.dtype,
) -> dict[str, Any]:
    weights: float = sum(p.numel() * p.element_size() for p in model.parameters())
    weights -= quantised * (dtype.itemsize - NF4_BYTES)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    ddp = DDP_BUCKET_BYTES if recipe.resources.num_workers > 1 else 0
    tokens = batch["rows_per_worker_max"] * recipe.model.max_length
    factor = CHECKPOINTED_FACTOR if recipe.train.gradient_checkpointing else FULL_FACTOR
    per_factor = tokens * config.hidden_size * config.num_hidden_layers * dtype.itemsize
    use_gpu = recipe.resources.use_gpu
    parts = {
        "weights": weights / GIB,
        "trainable_state": trainable * (GRAD_ADAMW_BYTES + ddp) / GIB,
        "activations": per_factor * factor / GIB,
        "logits": tokens * config.vocab_size * LOGIT_BYTES / GIB,
        "cuda_context": CUDA_CONTEXT_GIB if use_gpu else 0.0,
    }
    total = sum(parts.values())
    return {
        "estimate": True,
        **{name: round(value, 2) for name, value in parts.items()},
        "total": round(total, 2),
        "gpu_memory_gib": gpu_memory_gib,
        "fits": total <= gpu_memory_gib if use_gpu else None,
        "notes": NOTES if use_gpu else f"No GPU: per worker host memory. {NOTES}",
    }


def _scaling(recipe: CausalLMRecipe) -> dict[str, Any]:
    """The ScalingConfig ``medops.train.launcher.fit`` passes to TorchTrainer; Ray not started."""
    from medops.train.launcher import scaling_config

    scaling = scaling_config(recipe)
    return {
        "num_workers": scaling.num_workers,
        "use_gpu": scaling.use_gpu,
        "resources_per_worker": scaling.resources_per_worker,
        "placement_strategy": scaling.placement_strategy,
        "total_resources": scaling.total_resources,
    }


def _rayjob(recipe: CausalLMRecipe, host_weights_gib: float) -> tuple[dict[str, Any], list[str]]:
    """The RayJob the operator would create for this recipe's FineTune, and what to fix."""
    from kubernetes.utils import parse_quantity

    from medops.launch.finetune import finetune_resource
    from medops.launch.storage import run_key
    from medops.operator.rayjob import build_rayjob, recipe_yaml

    tracking = recipe.registry.tracking_uri or "from-cluster.mlflow_secret"
    finetune = finetune_resource(recipe, run_key(recipe.name, "dry-run"), tracking)
    # what the API server adds when the pipeline creates it
    namespace = recipe.cluster.finetune.namespace or "default"
    finetune["metadata"].update(namespace=namespace, uid="dry-run")
    recipe_yaml(finetune)  # the operator's own check: the recipe with the cluster's overrides
    spec = build_rayjob(finetune)["spec"]
    cluster = spec["rayClusterSpec"]
    (workers,) = cluster["workerGroupSpecs"]

    def limits(group: dict[str, Any]) -> dict[str, str]:
        return group["template"]["spec"]["containers"][0]["resources"]["limits"]

    pod_memory = limits(workers)["memory"]
    warnings = []
    if host_weights_gib * GIB > parse_quantity(pod_memory):
        warnings.append(
            f"cluster.finetune.worker_memory {pod_memory} is below the weights' "
            f"{host_weights_gib:.1f} GiB that each Ray pod holds in host memory while loading"
        )
    if recipe.resources.use_gpu:
        warnings.append(
            "the RayJob head has no GPU: export and evaluate (generation on every test row, "
            "tuned and base model, float32) run there on "
            f"{limits(cluster['headGroupSpec'])['cpu']} CPUs; lm.eval_limit bounds it"
        )
    report = {
        "name": finetune["metadata"]["name"],
        "image": finetune["spec"]["image"],
        "head_limits": limits(cluster["headGroupSpec"]),
        "worker_replicas": workers["replicas"],
        "worker_limits": limits(workers),
        "host_memory_gib_per_pod": {"weights": round(host_weights_gib, 2), "pod": pod_memory},
    }
    return report, warnings


def _sources(recipe: Recipe) -> list[dict[str, Any]]:
    """Each source as the recipe gives it; a conversation file (``format: auto``) that is
    on this machine also gets the format prepare will detect, read from its records."""
    from medops.assets import resolve_uri
    from medops.tasks.instruct.formats import detect_format, read_records

    described = []
    for source in recipe.data.sources:
        entry: dict[str, Any] = {"uri": source.uri, "role": source.role, "format": source.format}
        if source.format == "auto":
            try:
                path = resolve_uri(source.uri)
                if path.stat().st_size > DETECT_MAX_BYTES:
                    entry["detected"] = "not checked: over 256 MiB, prepare detects it"
                else:
                    entry["detected"] = detect_format(read_records(path))
            except MedopsError as error:
                entry["detected"] = f"not checked: {error}"
        described.append(entry)
    return described


def dry_run(recipe: Recipe, gpu_memory_gib: float = 80.0) -> dict[str, Any]:
    """Build model, adapters and Ray/KubeRay config of a causal-LM recipe; load no weights.

    Raises FileNotFoundError when the architecture's config.json is not on this machine and
    ValueError for a LoRA target that names no module or a batch the workers cannot split.
    """
    task = task_of(recipe)
    if not task.dry_run:
        raise ConfigurationError(f"--dry-run: task {task.name} has no dry run")
    recipe = typing.cast(CausalLMRecipe, recipe)  # generative tasks share train and lm.packing
    config, source = _config(recipe)
    checks = [f"config.json read from {source}"]
    not_checked = [
        "weights: not loaded; training finds them under model.base where it runs",
        "data: de-identification and example lengths (formats of local sources: see data)",
        "Kubernetes: CRD admission, quotas, GPU nodes, the image's contents",
        "memory and throughput: estimated from shapes, not measured",
    ]
    max_positions = getattr(config, "max_position_embeddings", None)
    if max_positions is not None:
        if recipe.model.max_length > max_positions:
            raise ConfigurationError(
                f"model.max_length {recipe.model.max_length} is above the model's "
                f"max_position_embeddings {max_positions}"
            )
        checks.append(f"model.max_length {recipe.model.max_length} <= {max_positions} positions")
    if not recipe.model.config and Path(source).is_dir():
        load_tokenizer(source)
        checks.append("tokenizer loads and has a chat template")
    else:
        not_checked.append("tokenizer and chat template (not on this machine)")
    batch = _batch(recipe)
    checks.append(f"train.batch_size {recipe.train.batch_size} splits over every worker")

    # the dtype lm_loop loads with: a GPU worker is assumed bf16-capable; a CPU worker is
    # judged by this machine's CPU, as the loop judges its own (precision.cpu_has_bf16)
    gpu = recipe.resources.use_gpu
    cast = autocast_dtype(recipe.train.precision, gpu, gpu or cpu_has_bf16())
    dtype = weights_dtype(recipe.train, cast)
    where = "a bf16-capable GPU assumed" if gpu else "as this machine's CPU computes it"
    checks.append(
        f"train.precision {recipe.train.precision}: "
        f"{str(cast or torch.float32).removeprefix('torch.')} ({where})"
    )
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
        architecture = type(model).__name__
        base_parameters = sum(p.numel() for p in model.parameters())
        quantised = _quantised(model) if recipe.train.method == "qlora" else 0
        if recipe.train.method != "full":
            counts = _check_targets(model, recipe.train.lora.targets)
            matched = ", ".join(f"{t} x{n}" for t, n in counts.items())
            checks.append(f"LoRA targets match modules: {matched}")
        if recipe.train.gradient_checkpointing:
            model.activation_checkpointing_enable()  # raises where the architecture cannot
            checks.append("gradient checkpointing enabled")
        model = adapt(model, recipe.train)
    checks.append("architecture built on the meta device, adapters attached by train.modules.adapt")
    if quantised:
        not_checked.append(
            "qlora: 4-bit weights are not built on the meta device (counted as 4-bit in the "
            "estimate); bitsandbytes and CUDA on the workers"
        )

    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    memory = _memory(recipe, config, model, quantised, batch, gpu_memory_gib, dtype)
    ray = {
        "scaling_config": _scaling(recipe),
        "max_failures": recipe.resources.max_failures,
        "training": recipe.cluster.training,
    }
    checks.append("ray.train.ScalingConfig built as medops.train.launcher.fit builds it")
    warnings = []
    if memory["fits"] is False:
        warnings.append(
            f"estimated {memory['total']} GiB per GPU is above gpu_memory_gib {gpu_memory_gib}"
        )
    if recipe.cluster.training == "finetune":
        ray["rayjob"], found = _rayjob(recipe, memory["weights"])
        warnings += found
        checks.append("FineTune -> RayJob built by medops.operator.rayjob.build_rayjob")
    return {
        "recipe": recipe.name,
        "model": {
            "base": recipe.model.base,
            "config": source,
            "architecture": architecture,
            "model_type": config.model_type,
            "hidden_size": config.hidden_size,
            "num_hidden_layers": config.num_hidden_layers,
            "num_attention_heads": config.num_attention_heads,
            "num_key_value_heads": getattr(config, "num_key_value_heads", None),
            "intermediate_size": getattr(config, "intermediate_size", None),
            "vocab_size": config.vocab_size,
            "max_position_embeddings": max_positions,
            "weights_dtype": str(dtype).removeprefix("torch."),
        },
        "parameters": {
            "base": base_parameters,
            "total": total,
            "trainable": trainable,
            "trainable_percent": round(100 * trainable / total, 4),
            "method": recipe.train.method,
        },
        "memory_gib_per_gpu": memory,
        "data": _sources(recipe),
        "ray": ray,
        "batch": batch,
        "checks": checks,
        "not_checked": not_checked,
        "warnings": warnings,
    }
