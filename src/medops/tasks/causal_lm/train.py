"""The causal-LM train stage: examples -> Ray Train (LoRA/full) -> adapter + merged model.

The stage directory is also the resume point: the Ray run lives in ``<out>/ray`` under
a fixed name and the MLflow run id in ``<out>/mlflow_run_id``, so running the stage
again into the same directory (``medops train --resume``) continues the same training
and the same MLflow run instead of starting over.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from peft import PeftModel
from safetensors.torch import load_file

from medops.data.dataset import read_split
from medops.errors import ConfigurationError, DataError
from medops.manifest import Manifest, timed
from medops.model.base import resolve_base
from medops.model.causal_lm import load_causal_lm, load_tokenizer, load_trainable
from medops.model.chat import Tokenized
from medops.privacy.audit import AUDIT_FILE, record_audit, run_audit, write_audit
from medops.privacy.canaries import Conversation
from medops.recipe import PrivacyAudit, Recipe
from medops.registry.tracking import client, open_run, redacted, tracking_uri
from medops.tasks.causal_lm.examples import training_conversations
from medops.tasks.causal_lm.loop import STATE_FILE, planted, train_lm_loop
from medops.tasks.causal_lm.recipe import CausalLMRecipe, CausalLMTrain
from medops.tasks.spec import load
from medops.train.errors import ResumeError
from medops.train.launcher import fit

log = logging.getLogger(__name__)
RUN_ID_FILE = "mlflow_run_id"
RAY_DIR = "ray"


def has_checkpoints(out_dir: Path) -> bool:
    return any((Path(out_dir) / RAY_DIR).glob("*/checkpoint_*"))


def _mlflow_run(recipe: Recipe, out_dir: Path) -> str:
    """The run this training owns: reopened on resume, created otherwise."""
    saved = out_dir / RUN_ID_FILE
    if saved.is_file():
        return saved.read_text().strip()
    run_id = open_run(recipe, run_name=f"{recipe.name}-train")
    saved.write_text(run_id + "\n")
    return run_id


def export(model_path: str, state_dir: Path, train: CausalLMTrain, out_dir: Path) -> dict[str, str]:
    """Write ``adapter/`` (LoRA) and ``model/`` (merged, loadable by plain transformers)."""
    model = load_causal_lm(model_path, train.model_copy(update={"gradient_checkpointing": False}))
    load_trainable(model, load_file(str(state_dir / STATE_FILE)))
    outputs = {}
    if train.method in ("lora", "qlora"):
        model.save_pretrained(str(out_dir / "adapter"))
        outputs["adapter"] = "adapter"
        model = cast(PeftModel, model).merge_and_unload()  # adapt wrapped it (LoRA/QLoRA)
    model.config.use_cache = True
    model.save_pretrained(str(out_dir / "model"))
    load_tokenizer(model_path).save_pretrained(out_dir / "model")
    outputs["model"] = "model"
    return outputs


EXAMPLES = "medops.tasks.causal_lm.examples:build_examples"


def train(recipe: CausalLMRecipe, out_dir: Path, prepared: Path, resume: bool = False) -> Manifest:
    extra = {"fields": [field.name for field in recipe.lm.fields]}
    return train_generative(
        recipe, out_dir, prepared, resume, EXAMPLES, extra, training_conversations
    )


Conversations = Callable[[list[dict[str, Any]], Any], list[Conversation]]


def _audit_settings(recipe: Any, conversations: Conversations | None) -> PrivacyAudit | None:
    """The audit to run: a task that names its training conversations has a
    ``privacy_audit`` section, and the recipe may switch it off."""
    if conversations is None or not recipe.privacy_audit.enabled:
        return None
    return cast(PrivacyAudit, recipe.privacy_audit)


def _audit(
    recipe: Any,
    audit: PrivacyAudit,
    trained_on: list[Conversation],
    out_dir: Path,
    run_id: str,
) -> dict[str, Any]:
    """Audit the exported model; the result goes to privacy_audit.json, the MLflow run and
    (returned) the manifest."""
    audited = run_audit(out_dir / "model", audit, recipe.seed, trained_on)
    write_audit(audited, out_dir)
    record_audit(client(recipe), run_id, audited)
    log.info("train: %s (%.0f s)", audited.reason, audited.seconds)
    return {"status": "passed" if audited.passed else "failed", **audited.to_dict()}


def _check_canaries_fit(canaries: list[Tokenized], max_length: int) -> None:
    longest = max(len(example.input_ids) for example in canaries)
    if longest > max_length:
        raise ConfigurationError(
            f"privacy_audit: a canary example takes {longest} tokens, more than "
            f"model.max_length {max_length}; raise model.max_length or set "
            "privacy_audit.enabled: false"
        )


def train_generative(
    recipe: Any,
    out_dir: Path,
    prepared: Path,
    resume: bool,
    examples: str,
    extra: dict[str, Any],
    conversations: Conversations | None = None,
) -> Manifest:
    """Train any generative task: ``examples`` ("module:function") turns its prepared rows
    into token ids, ``extra`` joins the manifest (what its register stage reads).

    ``conversations`` (prepared rows, the recipe's ``lm`` -> chat turns) opts the task into
    the privacy audit: canaries join the training rows, the exported model is audited.
    """
    build_examples = load(examples)
    audit = _audit_settings(recipe, conversations)
    manifest = Manifest(stage="train", recipe_hash=recipe.content_hash())
    with timed(manifest):
        if has_checkpoints(out_dir) and not resume:
            raise ResumeError(
                f"{out_dir} holds checkpoints of an earlier training; pass --resume to "
                "continue it, or choose an empty output directory"
            )
        manifest.add_input("prepared", prepared)
        model_path = resolve_base(recipe.model.base)
        tokenizer = load_tokenizer(model_path)
        for split in ("train", "validation"):
            rows = read_split(prepared, split)
            _, counts = build_examples(rows, tokenizer, recipe.lm, recipe.model.max_length)
            manifest.counts.update({f"{split}_{k}": v for k, v in sorted(counts.items())})
            manifest.counts[f"{split}_rows"] = len(rows)
        if not manifest.counts.get("train_kept"):
            raise DataError("no training example fits: check model.max_length and the lm section")
        audit_config = audit.model_dump(mode="json") if audit else None
        canaries = planted(audit_config, recipe.seed, tokenizer)
        if canaries:
            _check_canaries_fit(canaries, recipe.model.max_length)
            manifest.counts["train_canary_examples"] = len(canaries)
        run_id = _mlflow_run(recipe, out_dir)
        config = {
            "recipe": recipe.to_dict(),
            "model_path": model_path,
            "prepared_dir": str(prepared.resolve()),
            "tracking_uri": tracking_uri(recipe),
            "mlflow_run_id": run_id,
            "storage": str((out_dir / RAY_DIR).resolve()),
            "examples": examples,
            "privacy_audit": audit_config,
        }
        log.info("train: %s on %s", recipe.train.method, model_path)
        try:
            result = fit(recipe, config, out_dir / RAY_DIR, loop=train_lm_loop)
        except Exception:
            client(recipe).set_terminated(run_id, status="FAILED")
            raise
        # fit raises unless the run succeeded, and a run reports metrics and a checkpoint
        if result.checkpoint is None or result.metrics is None:
            raise RuntimeError("Ray Train reported success without a checkpoint or metrics")
        with result.checkpoint.as_directory() as state_dir:
            manifest.outputs = export(model_path, Path(state_dir), recipe.train, out_dir)
        manifest.metrics = {
            k: float(v) for k, v in result.metrics.items() if isinstance(v, int | float)
        }
        manifest.extra = {
            "mlflow_run_id": run_id,
            "tracking_uri": redacted(tracking_uri(recipe)),
            "method": recipe.train.method,
            "base_model": model_path,
            "workers": recipe.resources.num_workers,
            **extra,
        }
        if conversations is not None:
            manifest.extra["privacy_audit"] = {"status": "disabled"}
            if audit is not None:
                trained_on = conversations(read_split(prepared, "train"), recipe.lm)
                manifest.extra["privacy_audit"] = _audit(recipe, audit, trained_on, out_dir, run_id)
                manifest.outputs["privacy_audit"] = AUDIT_FILE
    return manifest
