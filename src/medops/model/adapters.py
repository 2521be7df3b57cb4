"""The trainable network and its adapters (LoRA via peft, or full fine-tuning)."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch
from peft import (
    LoraConfig,
    PeftModel,
    get_peft_model,
    get_peft_model_state_dict,
    set_peft_model_state_dict,
)
from torch import nn
from transformers import PreTrainedModel

from medops.model.encoder import mean_pool
from medops.recipe import Lora, Train


class Adaptation(Protocol):
    """What ``adapt`` reads of a train section (``Train``, or a task's subclass of it)."""

    @property
    def method(self) -> str: ...

    @property
    def lora(self) -> Lora: ...


class PooledClassifier(nn.Module):
    """Encoder -> mean pool (L2-normalised) -> linear head: the same maths as TextClassifier."""

    def __init__(
        self, encoder: PreTrainedModel | PeftModel, weight: np.ndarray, bias: np.ndarray
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            self.head.weight.copy_(torch.from_numpy(weight))
            self.head.bias.copy_(torch.from_numpy(bias))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.head(mean_pool(hidden, attention_mask))


def adapt(encoder: PreTrainedModel, train: Adaptation) -> PreTrainedModel | PeftModel:
    """Wrap the encoder for the recipe's method: LoRA adapters, or every weight trainable."""
    if train.method == "full":
        encoder.requires_grad_(True)
        return encoder
    config = LoraConfig(
        r=train.lora.r,
        lora_alpha=train.lora.alpha,
        lora_dropout=train.lora.dropout,
        target_modules=list(train.lora.targets),
        bias="none",
    )
    return get_peft_model(encoder, config)


def trainable_state(model: PooledClassifier, train: Train) -> dict[str, torch.Tensor]:
    """What a checkpoint must hold: the adapter (or whole encoder) and the head."""
    encoder_state = (
        get_peft_model_state_dict(model.encoder)
        if train.method == "lora"
        else model.encoder.state_dict()
    )
    state = {f"encoder.{k}": v.detach().cpu().contiguous() for k, v in encoder_state.items()}
    state.update(
        {f"head.{k}": v.detach().cpu().contiguous() for k, v in model.head.state_dict().items()}
    )
    return state


def load_trainable_state(
    model: PooledClassifier, state: dict[str, torch.Tensor], train: Train
) -> None:
    encoder_state = {k[len("encoder.") :]: v for k, v in state.items() if k.startswith("encoder.")}
    head_state = {k[len("head.") :]: v for k, v in state.items() if k.startswith("head.")}
    if train.method == "lora":
        result = set_peft_model_state_dict(model.encoder, encoder_state)
        unexpected = getattr(result, "unexpected_keys", None)
        if unexpected:
            raise ValueError(f"checkpoint does not match the LoRA config: {unexpected}")
    else:
        model.encoder.load_state_dict(encoder_state)
    model.head.load_state_dict(head_state)
