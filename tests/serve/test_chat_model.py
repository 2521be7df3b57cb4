"""The served chat model: batching, adapters sharing a base, limits, guards, abandonment."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer

from medops.model.chat import render_prompt
from medops.model.decode import Finished, GenerationParams
from medops.recipe import Batching, Deid, ServeLimits
from medops.serve.chat_model import ServedLM
from medops.serve.generation import Refused
from medops.serve.guard import Guard

TEXTS = [
    "Headache since I started lisinopril last week.",
    "Sertraline helps my mood but I sleep badly.",
    "Acne gone after doxycycline.",
    "Knee pain, ibuprofen does little.",
    "Anxious at night; hydroxyzine makes me drowsy.",
    "Migraine twice a week despite sumatriptan.",
]


def tiny_adapter(base: Path, out: Path, seed: int) -> Path:
    """A random LoRA adapter, scaled up so each served name answers differently on any machine."""
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base)
    config = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    peft_model = get_peft_model(model, config)
    with torch.no_grad():
        for name, weight in peft_model.named_parameters():
            if "lora_B" in name:
                weight.mul_(50.0)
    peft_model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def two_adapters(tiny_lm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("adapters")
    return {
        "champion": tiny_adapter(tiny_lm_dir, root / "champion", 1),
        "challenger": tiny_adapter(tiny_lm_dir, root / "challenger", 2),
    }


def served_lm(tiny_lm_dir: Path, adapters: dict[str, Path], **limits: int) -> ServedLM:
    base = AutoModelForCausalLM.from_pretrained(tiny_lm_dir, dtype=torch.float32)
    names = list(adapters)
    model = PeftModel.from_pretrained(base, str(adapters[names[0]]), adapter_name=names[0])
    for name in names[1:]:
        model.load_adapter(str(adapters[name]), adapter_name=name)
    return ServedLM(
        model.eval(),
        AutoTokenizer.from_pretrained(tiny_lm_dir),
        {n: n for n in names},
        Guard(Deid(), inputs=False, outputs=False),
        ServeLimits(**limits),
        Batching(max_batch_size=8, max_wait_ms=50),
    )


@pytest.fixture(scope="module")
def served(tiny_lm_dir: Path, two_adapters: dict[str, Path]) -> ServedLM:
    return served_lm(tiny_lm_dir, two_adapters, max_tokens=64, max_prompt_tokens=256)


async def complete(served: ServedLM, model: str, text: str, max_tokens: int = 12) -> Finished:
    prompt = await served.chat_prompt(model, [{"role": "user", "content": text}])
    async for item in served.stream(model, prompt, GenerationParams(max_tokens=max_tokens)):
        if isinstance(item, Finished):
            return item
    raise AssertionError("no Finished")


def run(coro, timeout: float = 60.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def test_concurrent_requests_share_batches_and_answer_as_alone(served: ServedLM):
    models = ["champion", "challenger"] * 3

    async def together():
        pairs = zip(models, TEXTS, strict=True)
        return await asyncio.gather(*(complete(served, m, t) for m, t in pairs))

    async def alone():
        return [await complete(served, m, t) for m, t in zip(models, TEXTS, strict=True)]

    batched = run(together())
    sequential = run(alone())
    assert [f.text for f in batched] == [f.text for f in sequential]

    # the two adapters really differ on the same texts, so routing by model is observable
    async def every_text(model: str) -> list[str]:
        return [(await complete(served, model, t)).text for t in TEXTS]

    assert run(every_text("champion")) != run(every_text("challenger"))


def test_batches_form_under_concurrency(tiny_lm_dir: Path, two_adapters: dict[str, Path]):
    lm = served_lm(tiny_lm_dir, two_adapters)
    sizes: list[int] = []
    take = lm.queue.take

    def recording_take():
        batch = take()
        if batch:
            sizes.append(len(batch))
        return batch

    lm.queue.take = recording_take  # type: ignore[method-assign]
    # the worker is already blocked in the original take: one request releases it
    run(complete(lm, "champion", TEXTS[0], 2))

    async def burst():
        return await asyncio.gather(*(complete(lm, "champion", t, 4) for t in TEXTS))

    run(burst())
    assert max(sizes) > 1, f"concurrent requests were decoded one by one: {sizes}"


def test_limits_refuse_before_decoding(served: ServedLM):
    with pytest.raises(Refused) as unknown:
        run(served.chat_prompt("gpt-4", [{"role": "user", "content": "hi"}]))
    assert unknown.value.status == 404 and "champion" in unknown.value.message
    with pytest.raises(Refused) as empty:
        run(served.chat_prompt("champion", [{"role": "user", "content": "\u200b \ufeff\n"}]))
    assert empty.value.status == 422
    prompt = run(served.chat_prompt("champion", [{"role": "user", "content": "hi"}]))

    async def ask(params: GenerationParams, text: str = prompt):
        async for _ in served.stream("champion", text, params):
            pass

    with pytest.raises(Refused) as too_many:
        run(ask(GenerationParams(max_tokens=65)))
    assert too_many.value.status == 422 and too_many.value.param == "max_tokens"
    with pytest.raises(Refused) as too_long:
        run(ask(GenerationParams(max_tokens=4), "word " * 400))
    assert too_long.value.status == 422 and "max_prompt_tokens" in too_long.value.message
    with pytest.raises(Refused) as chars:
        run(served.text_prompt("champion", "x" * 20_001))
    assert chars.value.status == 422 and "20001" in chars.value.message


def test_closing_a_stream_frees_its_slot(served: ServedLM):
    seen: list = []
    original = served.queue.put

    def spy(item, size=1):
        seen.append(item)
        return original(item, size)

    served.queue.put = spy  # type: ignore[method-assign]
    try:

        async def leave_early():
            prompt = await served.chat_prompt("champion", [{"role": "user", "content": TEXTS[1]}])
            stream = served.stream("champion", prompt, GenerationParams(max_tokens=64))
            async for _piece in stream:
                break
            await stream.aclose()
            started = time.monotonic()
            # the next request is answered: the slot was freed, the model thread moved on
            await complete(served, "champion", TEXTS[2], 2)
            return time.monotonic() - started

        waited = run(leave_early())
    finally:
        served.queue.put = original  # type: ignore[method-assign]
    job = seen[0]
    assert len(job.seq.ids) < 64, "the abandoned sequence stopped before its max_tokens"
    assert waited < 10


def test_guard_deidentifies_the_prompt(tiny_lm_dir: Path, two_adapters: dict[str, Path]):
    lm = served_lm(tiny_lm_dir, two_adapters)
    lm.guard = Guard(Deid(), inputs=True, outputs=True)
    prompt = run(
        lm.chat_prompt(
            "champion",
            [{"role": "user", "content": "Patient John Smith, MRN 4455667, called 555-123-4567."}],
        )
    )
    for planted in ("John Smith", "4455667", "555-123-4567"):
        assert planted not in prompt
    assert "[NAME]" in prompt or "[PERSON]" in prompt
    redactor = lm.guard.stream()
    out = redactor.feed('{"drug": "lisinopril", "note": "call John Smith at 555-123-4567", ')
    out += redactor.flush()
    assert "John Smith" not in out and "555-123-4567" not in out
    assert redactor.redactions >= 2 and out == redactor.text


def test_the_task_system_prompt_comes_first_and_keeps_the_callers(served: ServedLM):
    system = "You are a careful clinical assistant."
    user = {"role": "user", "content": "hi"}
    served.system_prompt = system
    try:
        alone = run(served.chat_prompt("champion", [user]))
        caller = run(
            served.chat_prompt("champion", [{"role": "system", "content": "Be brief."}, user])
        )
    finally:
        served.system_prompt = None
    tokenizer = served.tokenizer
    assert alone == render_prompt(tokenizer, [{"role": "system", "content": system}, user])
    merged = {"role": "system", "content": f"{system}\n\nBe brief."}
    assert caller == render_prompt(tokenizer, [merged, user])
