"""The answer-only loss runs the LM head where the loss is, and changes nothing else."""

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM

from medops.model.chat import IGNORE, Tokenized
from medops.model.loss import answer_loss_sum
from medops.train.packing import collate_packed


def _tiny(lora: bool) -> torch.nn.Module:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=300,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
    )
    model = LlamaForCausalLM(config)
    if lora:
        lora_config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])
        model = get_peft_model(model, lora_config)
        for name, param in model.named_parameters():  # a random B: gradients reach A too
            if "lora_B" in name:
                torch.nn.init.normal_(param, std=0.1)
    return model.train()


def _batch() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    examples = []
    for i, n in enumerate((17, 9, 23, 12, 6)):
        ids = torch.randint(3, 300, (n,), generator=generator).tolist()
        examples.append(Tokenized(f"r{i}", ids, [IGNORE] * (n - 4) + ids[n - 4 :]))
    return collate_packed([examples[:2], examples[2:3], examples[3:]], pad_id=0)


def _full_logits_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The textbook computation: logits everywhere, shift, ignore the prompt."""
    logits = model(
        input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False
    ).logits
    return torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]),
        batch["labels"][:, 1:].reshape(-1),
        ignore_index=IGNORE,
        reduction="sum",
    )


def _loss_and_grads(model, loss_fn, batch):
    model.zero_grad(set_to_none=True)
    loss = loss_fn(model, batch)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    return loss.detach(), grads


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_gathered_loss_and_gradients_equal_the_full_logits_ones(lora):
    model, batch = _tiny(lora), _batch()
    got, got_grads = _loss_and_grads(model, answer_loss_sum, batch)
    expected, expected_grads = _loss_and_grads(model, _full_logits_loss, batch)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert got_grads.keys() == expected_grads.keys() and got_grads
    for name, grad in got_grads.items():
        torch.testing.assert_close(grad, expected_grads[name], rtol=1e-5, atol=1e-5, msg=name)


def test_the_head_runs_only_at_answer_positions_and_is_restored_after():
    model, batch = _tiny(False), _batch()
    seen = []
    head = model.get_output_embeddings()
    hook = head.register_forward_hook(lambda _m, _a, out: seen.append(tuple(out.shape)))
    answer_loss_sum(model, batch)
    predicted = int((batch["labels"][:, 1:] != IGNORE).sum())
    assert seen == [(predicted, 300)], "one (answer positions, vocabulary) head call"
    model(input_ids=batch["input_ids"], use_cache=False)
    assert seen[-1] == (*batch["input_ids"].shape, 300), "the head is whole again"
    hook.remove()
