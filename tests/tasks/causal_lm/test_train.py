"""Real Ray Train on two workers with the tiny Llama: checkpoints, a killed worker, --resume."""

import json

import pytest
from transformers import AutoModelForCausalLM

from medops.recipe import Recipe
from medops.registry.tracking import client
from medops.stages import run_stage, run_training
from medops.tasks.causal_lm.loop import FAULT_ENV, FAULT_MARKER
from medops.tasks.causal_lm.train import RAY_DIR, has_checkpoints
from medops.train.errors import ResumeError, TrainingFailed


def _final_loss(manifest) -> float:
    return manifest.metrics["train_loss"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, tiny_lm_recipe_module, extraction_prepared_module):
    out = tmp_path_factory.mktemp("lm-uninterrupted")
    return run_stage(
        "train", tiny_lm_recipe_module, out, {"prepared": extraction_prepared_module}
    ), out


@pytest.fixture(scope="module")
def tiny_lm_recipe_module(tmp_path_factory, tiny_lm_dir):
    from tests.conftest import tiny_lm_overrides

    return tiny_lm_overrides(tmp_path_factory.mktemp("lm-run"), tiny_lm_dir)


@pytest.fixture(scope="module")
def extraction_prepared_module(tmp_path_factory):
    from tests.conftest import write_extraction_prepared

    return write_extraction_prepared(tmp_path_factory.mktemp("lm-prepared"))


def test_trains_exports_and_logs_one_mlflow_run(uninterrupted, tiny_lm_recipe_module):
    manifest, out = uninterrupted
    assert (out / "adapter" / "adapter_config.json").is_file()
    model = AutoModelForCausalLM.from_pretrained(out / "model")
    assert not hasattr(model, "peft_config"), "the exported model is merged"
    assert manifest.counts["train_kept"] == manifest.counts["train_rows"] == 24
    assert manifest.metrics["step"] == manifest.metrics["total_steps"]
    assert manifest.metrics["tokens_per_second"] > 0
    mlflow = client(tiny_lm_recipe_module)
    history = mlflow.get_metric_history(manifest.extra["mlflow_run_id"], "train_loss")
    steps = [m.step for m in history]
    assert steps == list(range(1, int(manifest.metrics["step"]) + 1)), "rank 0 alone logs"
    assert history[-1].value < history[0].value, "the loss goes down"


def test_a_killed_worker_resumes_from_the_checkpoint(
    uninterrupted, tiny_lm_recipe_module, extraction_prepared_module, tmp_path, monkeypatch
):
    monkeypatch.setenv(FAULT_ENV, "3")
    out = tmp_path / "killed"
    manifest = run_stage(
        "train", tiny_lm_recipe_module, out, {"prepared": extraction_prepared_module}
    )
    assert (out / RAY_DIR / FAULT_MARKER).is_file(), "a worker really died"
    expected = _final_loss(uninterrupted[0])
    assert manifest.metrics["step"] == uninterrupted[0].metrics["step"]
    assert _final_loss(manifest) == pytest.approx(expected, rel=0.02)


def test_resume_continues_a_failed_training_and_refuses_to_overwrite(
    uninterrupted, tiny_lm_recipe_module, extraction_prepared_module, tmp_path, monkeypatch
):
    recipe: Recipe = tiny_lm_recipe_module.model_copy(
        update={"resources": tiny_lm_recipe_module.resources.model_copy(update={"max_failures": 0})}
    )
    out = tmp_path / "train"
    monkeypatch.setenv(FAULT_ENV, "3")
    with pytest.raises(TrainingFailed, match="--resume"):
        run_training(recipe, extraction_prepared_module, out, resume=False)
    assert has_checkpoints(out)
    monkeypatch.delenv(FAULT_ENV)

    with pytest.raises(ResumeError, match="--resume"):
        run_training(recipe, extraction_prepared_module, out, resume=False)

    manifest = run_training(recipe, extraction_prepared_module, out, resume=True)
    assert manifest.metrics["step"] == uninterrupted[0].metrics["step"]
    assert _final_loss(manifest) == pytest.approx(_final_loss(uninterrupted[0]), rel=0.02)
    written = json.loads((out / "manifest.json").read_text())
    assert written["extra"]["mlflow_run_id"] == (out / "mlflow_run_id").read_text().strip()


def test_resume_is_refused_for_classification(tiny_recipe, prepared_dir, tmp_path):
    with pytest.raises(ValueError, match="causal-lm"):
        run_training(tiny_recipe, prepared_dir, tmp_path / "t", resume=True)
