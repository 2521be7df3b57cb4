"""``medops train --dry-run``: real architectures on the meta device, no weights loaded."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from transformers import AutoModelForCausalLM, PreTrainedModel

from medops.launch.dry_run import dry_run
from medops.recipe import load_recipe
from tests.conftest import EXTRACTION_RECIPE, ROOT

LLAMA_RECIPE = ROOT / "recipes" / "extraction-llama3-8b-gpu.yaml"
LLAMA_8B_PARAMETERS = 8_030_261_248  # Llama-3.1-8B's published parameter count


def lora_parameters(r: int, layers: int, shapes: list[tuple[int, int]]) -> int:
    """LoRA on a Linear in -> out adds A (r x in) and B (out x r): r * (in + out)."""
    return layers * r * sum(fan_in + fan_out for fan_in, fan_out in shapes)


def _refuse(*args: Any, **kwargs: Any) -> None:
    raise AssertionError(f"the dry run loaded weights: from_pretrained{args[-1:]}")


@pytest.fixture(scope="module")
def llama() -> tuple[dict[str, Any], float]:
    """The 8B recipe's dry run, timed, with every ``from_pretrained`` made to fail."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(ROOT)  # model.config is relative to the current directory
        patch.setattr(AutoModelForCausalLM, "from_pretrained", _refuse)
        patch.setattr(PreTrainedModel, "from_pretrained", classmethod(_refuse))
        started = time.perf_counter()
        report = dry_run(load_recipe(LLAMA_RECIPE))
        return report, time.perf_counter() - started


def test_llama_8b_counts_parameters_and_lora_exactly(llama: tuple[dict[str, Any], float]) -> None:
    parameters = llama[0]["parameters"]
    assert parameters["base"] == LLAMA_8B_PARAMETERS
    assert abs(parameters["total"] - 8.03e9) / 8.03e9 < 0.01
    hidden, kv, mlp = 4096, 8 * 128, 14336
    shapes = [(hidden, hidden), (hidden, kv), (hidden, kv), (hidden, hidden)]
    shapes += [(hidden, mlp), (hidden, mlp), (mlp, hidden)]
    assert parameters["trainable"] == lora_parameters(16, 32, shapes) == 41_943_040
    assert parameters["total"] == parameters["base"] + parameters["trainable"]


def test_llama_8b_ray_and_rayjob(llama: tuple[dict[str, Any], float]) -> None:
    ray = llama[0]["ray"]
    scaling = ray["scaling_config"]
    assert scaling["num_workers"] == 4
    assert scaling["use_gpu"] is True
    assert scaling["resources_per_worker"] == {"CPU": 8, "GPU": 1}
    assert ray["rayjob"]["worker_replicas"] == 4
    assert ray["rayjob"]["worker_limits"]["nvidia.com/gpu"] == "1"
    assert "nvidia.com/gpu" not in ray["rayjob"]["head_limits"]


def test_llama_8b_memory_is_a_labelled_estimate(llama: tuple[dict[str, Any], float]) -> None:
    report = llama[0]
    memory = report["memory_gib_per_gpu"]
    assert memory["estimate"] is True
    assert "activations:" in memory["notes"]
    parts = ("weights", "trainable_state", "activations", "logits", "cuda_context")
    assert memory["total"] == pytest.approx(sum(memory[p] for p in parts), abs=0.05)
    # LoRA with bf16 autocast: the frozen base in bf16, peft's adapters in fp32
    parameters = report["parameters"]
    expected = parameters["base"] * 2 + parameters["trainable"] * 4
    assert report["model"]["weights_dtype"] == "bfloat16"
    assert memory["weights"] == pytest.approx(expected / 1024**3, 0.01)
    assert memory["fits"] is True
    assert report["batch"]["tokens_per_optimizer_step_max"] == 8 * 4 * 2048
    json.dumps(report)


def test_llama_8b_loads_no_weights_and_is_quick(llama: tuple[dict[str, Any], float]) -> None:
    report, seconds = llama  # any from_pretrained call would have failed the fixture
    assert seconds < 60
    assert any("weights" in item for item in report["not_checked"])


def test_smollm_demo_recipe() -> None:
    report = dry_run(load_recipe(EXTRACTION_RECIPE))
    hidden, kv = 576, 3 * 64
    shapes = [(hidden, hidden), (hidden, kv), (hidden, kv), (hidden, hidden)]
    assert report["parameters"]["trainable"] == lora_parameters(16, 30, shapes)
    assert report["ray"]["scaling_config"]["use_gpu"] is False
    assert "rayjob" not in report["ray"]
    assert report["memory_gib_per_gpu"]["fits"] is None  # a CPU recipe
    assert "tokenizer loads and has a chat template" in report["checks"]


@pytest.mark.parametrize(("native", "dtype"), [(True, "bfloat16"), (False, "float32")])
def test_a_cpu_recipe_reports_the_precision_this_cpu_gives(
    monkeypatch: pytest.MonkeyPatch, native: bool, dtype: str
) -> None:
    monkeypatch.setattr("medops.launch.dry_run.cpu_has_bf16", lambda: native)
    report = dry_run(load_recipe(EXTRACTION_RECIPE, ["train.precision=auto"]))
    wanted = f"train.precision auto: {dtype} (as this machine's CPU computes it)"
    assert wanted in report["checks"]


def test_the_gpu_recipe_reports_bf16_on_its_gpus(llama: tuple[dict[str, Any], float]) -> None:
    assert "train.precision bf16: bfloat16 (a bf16-capable GPU assumed)" in llama[0]["checks"]


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        (["train.lora.targets=[qkv_proj]"], ValueError, "'qkv_proj' matches no module"),
        (["train.lora.targets=[q_proj,qkv_proj]"], ValueError, "Linear modules are .*q_proj"),
        (
            ["model.config=null", "model.base=medops-test/not-on-this-machine"],
            FileNotFoundError,
            "not on this machine .* set model.config",
        ),
        (["model.config=no/such/config.json"], FileNotFoundError, "current directory"),
        (["train.batch_size=2"], ValueError, "smaller than resources.num_workers 4"),
    ],
)
def test_refuses_with_a_clear_message(
    monkeypatch: pytest.MonkeyPatch, overrides: list[str], error: type, message: str
) -> None:
    monkeypatch.chdir(ROOT)
    with pytest.raises(error, match=message):
        dry_run(load_recipe(LLAMA_RECIPE, overrides))


def test_instruct_gpu_recipe_detects_each_source_format(tmp_path, monkeypatch) -> None:
    """The 8B chat recipe reads the same formats as any instruct recipe: its dry run says
    which one prepare will detect in each local file, and which files it could not read."""
    monkeypatch.chdir(ROOT)
    share = tmp_path / "chats.jsonl"
    share.write_text(
        json.dumps(
            {"conversations": [{"from": "human", "value": "Q"}, {"from": "gpt", "value": "A"}]}
        )
        + "\n"
    )
    sources = (
        f"data.sources=[{{uri: {share}, role: train}}, "
        f"{{uri: {tmp_path / 'absent.jsonl'}, role: test}}]"
    )
    with monkeypatch.context() as patch:
        patch.setattr(AutoModelForCausalLM, "from_pretrained", _refuse)
        report = dry_run(load_recipe(ROOT / "recipes" / "instruct-llama3-8b-gpu.yaml", [sources]))
    first, second = report["data"]
    assert first == {"uri": str(share), "role": "train", "format": "auto", "detected": "sharegpt"}
    assert second["detected"].startswith("not checked: ") and "does not exist" in second["detected"]
    assert report["parameters"]["base"] == LLAMA_8B_PARAMETERS
