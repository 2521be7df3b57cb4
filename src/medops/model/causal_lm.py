"""Causal language models: where the weights come from and how they are made trainable.

``model.base`` may be a local Hugging Face directory, a model id already in the local
Hugging Face cache, or a ``.gguf`` file (converted once into the medops model cache, see
``gguf_cache``). LoRA and full fine-tuning work everywhere; QLoRA needs a CUDA GPU and
bitsandbytes and says so when either is missing.
"""

from __future__ import annotations

import importlib.util
from typing import Any, Protocol

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel

from medops.errors import ConfigurationError
from medops.model.adapters import Adaptation, adapt


class Training(Adaptation, Protocol):
    """The training settings a causal LM is built for (``task: causal-lm``'s train section)."""

    @property
    def gradient_checkpointing(self) -> bool: ...


def autocast_dtype(precision: str, on_gpu: bool, bf16_supported: bool) -> torch.dtype | None:
    """None for fp32. ``auto``: bf16 where the device computes it natively (a bf16 GPU, or a
    CPU with AMX / AVX512-BF16: ``precision.cpu_has_bf16``), else fp32, since emulated bf16
    is slower than fp32. fp16 autocast only on a GPU (a CPU has no fast fp16 matmul)."""
    if precision == "fp32" or (precision == "fp16" and not on_gpu):
        return None
    if precision == "auto":
        return torch.bfloat16 if bf16_supported else None
    return torch.bfloat16 if precision == "bf16" else torch.float16


def weights_dtype(train: Training, cast: torch.dtype | None) -> torch.dtype:
    """LoRA keeps the frozen base in the autocast dtype (half the memory; peft keeps the
    adapters in fp32); full fine-tuning keeps fp32 master weights."""
    return cast if cast is not None and train.method == "lora" else torch.float32


def load_tokenizer(path: str) -> Any:
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not tokenizer.chat_template:
        raise ConfigurationError(
            f"{path}: the tokenizer has no chat template; medops renders examples with it"
        )
    return tokenizer


def _qlora_settings() -> dict[str, Any]:
    if not torch.cuda.is_available() or importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigurationError(
            "train.method qlora needs a CUDA GPU and the bitsandbytes package "
            "(pip install bitsandbytes==0.50.2 in the GPU image); use method: lora on CPU"
        )
    from transformers import BitsAndBytesConfig

    return {
        "quantization_config": BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=torch.bfloat16,
            bnb_4bit_use_double_quant=True,
        )
    }


def load_causal_lm(
    path: str, train: Training, dtype: torch.dtype = torch.float32
) -> PreTrainedModel | PeftModel:
    """The base model, ready for ``train.method`` (adapters attached, grads where needed)."""
    settings = _qlora_settings() if train.method == "qlora" else {"dtype": dtype}
    model = AutoModelForCausalLM.from_pretrained(path, **settings)
    if train.method == "qlora":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, train.gradient_checkpointing)
    elif train.gradient_checkpointing:
        model.gradient_checkpointing_enable()  # peft's prepare_model_for_kbit_training uses it
        model.enable_input_require_grads()
    model.config.use_cache = False
    return adapt(model, train)


def trainable_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every trainable parameter (LoRA weights, or all of them): what a checkpoint holds."""
    return {
        name: param.detach().cpu().contiguous()
        for name, param in model.named_parameters()
        if param.requires_grad
    }


def load_trainable(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Restore ``trainable_tensors`` output; refuses a checkpoint of another model or method."""
    wanted = {name for name, p in model.named_parameters() if p.requires_grad}
    if set(state) != wanted:
        missing, extra = sorted(wanted - set(state)), sorted(set(state) - wanted)
        raise ConfigurationError(
            f"checkpoint does not match this model/method: {len(missing)} tensor(s) missing "
            f"(e.g. {missing[:2]}), {len(extra)} unexpected (e.g. {extra[:2]})"
        )
    model.load_state_dict(state, strict=False)
