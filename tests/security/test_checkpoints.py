"""A checkpoint on shared storage is data, not code (issue 22, low finding 8): resuming
never unpickles an arbitrary object from it."""

from __future__ import annotations

import os
import pickle

import pytest
import torch

from medops.tasks.causal_lm.loop import OPTIMIZER_FILE, load_optimizer_state


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch /tmp/medops-pwned",))


def test_a_pickled_payload_in_a_checkpoint_is_refused(tmp_path):
    with (tmp_path / OPTIMIZER_FILE).open("wb") as handle:
        pickle.dump({"optimizer": _Payload()}, handle)
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        load_optimizer_state(tmp_path)


def test_what_training_saves_loads_with_weights_only(tmp_path):
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    state = {
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "torch_rng": torch.get_rng_state(),
    }
    torch.save(state, tmp_path / OPTIMIZER_FILE)
    loaded = load_optimizer_state(tmp_path)
    assert torch.equal(loaded["torch_rng"], state["torch_rng"])
    assert loaded["optimizer"]["state"][0]["step"] == 1
