"""A generative model trained with a context line gets the same line at the endpoint: its
entity's latest features from the online store (embedded SQLite, as prepare leaves it),
placed where training placed it, on the OpenAI routes and on v1/v2 alike."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import torch
from fastapi import FastAPI
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferInput, InferRequest
from transformers import AutoModelForCausalLM, AutoTokenizer

from medops.features.online import serving_lookup
from medops.model.chat import render_prompt
from medops.model.decode import Finished, GenerationParams
from medops.recipe import Batching, Deid, Recipe, ServeLimits
from medops.serve.chat_model import ServedLM
from medops.serve.guard import Guard
from medops.serve.openai import install_openai
from medops.tasks.causal_lm.examples import prompt_messages
from medops.tasks.causal_lm.recipe import LanguageTask
from medops.tasks.causal_lm.serving import ExtractorPredictor, PromptContext, prompt_context

from .conftest import drug_context_recipe
from .test_openai_routes import running

LM = LanguageTask(max_new_tokens=2)
TEXT = "It helped my mood within weeks."
ZOLOFT = {"reviews_before": 5, "mean_rating_before": 5.5, "top_condition_before": "Anxiety"}
UNKNOWN = dict.fromkeys(ZOLOFT)
SECRET = "Jane Doe MRN QX-4412-ZK"  # planted: never comes back in an error


class RecordingLM(ServedLM):
    """Keeps every prompt it is asked to decode, to compare with the training prompt."""

    prompts: list[str]

    def stream(
        self, model: str, prompt: str, params: GenerationParams
    ) -> AsyncIterator[str | Finished]:
        self.prompts.append(prompt)
        return super().stream(model, prompt, params)


@pytest.fixture(scope="module")
def recipe(tmp_path_factory: pytest.TempPathFactory) -> Recipe:
    return drug_context_recipe(tmp_path_factory.mktemp("lm-context"), list(ZOLOFT))


@pytest.fixture(scope="module")
def served(recipe: Recipe, tiny_lm_dir: Path) -> RecordingLM:
    context = prompt_context(recipe)
    assert context is not None and context.key == "drug"
    lm = RecordingLM(
        AutoModelForCausalLM.from_pretrained(tiny_lm_dir, dtype=torch.float32).eval(),
        AutoTokenizer.from_pretrained(tiny_lm_dir),
        {recipe.serve.model_name: None},
        Guard(Deid(), inputs=False, outputs=False),
        ServeLimits(max_tokens=4),
        Batching(max_batch_size=4, max_wait_ms=5),
        context=context,
    )
    lm.prompts = []
    return lm


def trained(served: ServedLM, context: dict[str, Any] | None) -> str:
    """The prompt training and evaluation built for TEXT with ``context``."""
    return render_prompt(served.tokenizer, prompt_messages(TEXT, LM, context))


@pytest.fixture(scope="module")
def app(served: RecordingLM) -> FastAPI:
    app = FastAPI()
    install_openai(app, served, ServeLimits(max_tokens=4))
    return app


def post(app: FastAPI, path: str, body: dict[str, Any]) -> httpx.Response:
    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://medops") as client:
            return await client.post(f"/openai/v1{path}", json=body, timeout=60)

    return asyncio.run(send())


def chat(app: FastAPI, **extra: Any) -> httpx.Response:
    messages = prompt_messages(TEXT, LM)  # what a client sends: the model's own layout
    return post(app, "/chat/completions", {"messages": messages, "max_tokens": 2, **extra})


@pytest.mark.parametrize(
    ("ids", "features", "status"),
    [
        ({"drug": "Zoloft"}, ZOLOFT, "found"),
        ({"drug": "  Zoloft "}, ZOLOFT, "found"),
        ({"drug": "Never reviewed"}, UNKNOWN, "unknown id"),  # no history, never an error
        (None, UNKNOWN, "no id"),
    ],
)
def test_chat_prompt_is_the_training_prompt_with_the_entitys_line(
    app: FastAPI, served: RecordingLM, ids: dict | None, features: dict, status: str
) -> None:
    response = chat(app, **({"medops": ids} if ids is not None else {}))
    assert response.status_code == 200, response.text
    assert response.json()["medops"] == {"context": status}
    assert served.prompts[-1] == trained(served, features)
    assert "Context known before this text: reviews_before: 5; mean_rating_before: 5.5" in (
        trained(served, ZOLOFT)
    )


def test_a_turn_in_another_layout_gets_the_line_first(app: FastAPI, served: RecordingLM) -> None:
    turns = [
        {"role": "user", "content": "an earlier question"},
        {"role": "assistant", "content": "an earlier answer"},
        {"role": "user", "content": "How is it tolerated?"},
    ]
    body = {"messages": turns, "max_tokens": 2, "medops": {"drug": "Advil"}}
    assert post(app, "/chat/completions", body).status_code == 200
    line = "Context known before this text: reviews_before: 2; mean_rating_before: 0.0; "
    expected = [
        *turns[:2],
        {"role": "user", "content": f"{line}top_condition_before: Pain\n\nHow is it tolerated?"},
    ]
    assert served.prompts[-1] == render_prompt(served.tokenizer, expected)


def test_completion_and_stream_say_the_context(app: FastAPI, served: RecordingLM) -> None:
    raw = prompt_messages(TEXT, LM)[0]["content"]
    body = {"prompt": raw, "max_tokens": 2, "medops": {"drug": "Zoloft"}}
    response = post(app, "/completions", body)
    assert response.json()["medops"] == {"context": "found"}
    assert served.prompts[-1] == prompt_messages(TEXT, LM, ZOLOFT)[0]["content"]

    streamed = chat(app, stream=True, medops={"drug": "Zoloft"}).text
    chunks = [line for line in streamed.splitlines() if line.startswith("data: {")]
    said = [chunk for chunk in chunks if '"medops"' in chunk]
    assert len(said) == 1 and '"finish_reason"' in said[0] and '"found"' in said[0]


@pytest.mark.parametrize(
    ("medops", "param"),
    [
        ({"patient_key": SECRET}, "medops"),  # another key: not taken for "no id"
        ({"drug": 42}, "medops.drug"),
        ({"drug": " "}, "medops.drug"),
    ],
)
def test_a_bad_entity_id_is_refused_by_name(app: FastAPI, medops: dict, param: str) -> None:
    response = chat(app, medops=medops)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["param"] == param and "medops" in error["message"]
    assert "Jane" not in response.text


def test_a_model_without_context_answers_without_medops(served: ServedLM) -> None:
    plain = ServedLM(
        served.model,
        served.tokenizer,
        dict(served.names),
        Guard(Deid(), inputs=False, outputs=False),
        ServeLimits(max_tokens=4),
        Batching(),
    )
    app = FastAPI()
    install_openai(app, plain, ServeLimits(max_tokens=4))
    response = chat(app, medops={"drug": "Zoloft"})
    assert response.status_code == 200 and "medops" not in response.json()


def test_the_official_client_sends_and_reads_the_extension(app: FastAPI, recipe: Recipe) -> None:
    with (
        running(app) as port,
        openai.OpenAI(
            base_url=f"http://127.0.0.1:{port}/openai/v1", api_key="x", max_retries=0
        ) as client,
    ):
        answer = client.chat.completions.create(
            model=recipe.serve.model_name,
            messages=[{"role": "user", "content": prompt_messages(TEXT, LM)[0]["content"]}],
            max_tokens=2,
            extra_body={"medops": {"drug": "Advil"}},
        )
    assert (answer.model_extra or {})["medops"] == {"context": "found"}


def test_no_store_built_means_no_line(recipe: Recipe, tmp_path: Path, caplog) -> None:
    elsewhere = recipe.model_copy(update={"output_dir": str(tmp_path / "nothing")})
    assert serving_lookup(elsewhere) is None
    with caplog.at_level("WARNING", logger="kserve.medops"):
        assert prompt_context(elsewhere) is None
    assert "every request is answered without it" in caplog.text
    assert prompt_context(recipe.model_copy(update={"features": None})) is None


# --- v1 / v2 of the extraction predictor: the same line, status per text ---------------


@pytest.fixture(scope="module")
def extractor(recipe: Recipe, served: RecordingLM) -> ExtractorPredictor:
    predictor = ExtractorPredictor(recipe, "in-process")
    predictor.generator, predictor.lm, predictor.ready = served, LM, True
    return predictor


def infer(model: ExtractorPredictor, body: dict | InferRequest) -> Any:
    response, _headers = asyncio.run(model(body))
    return response


def test_v1_instances_name_their_entity(extractor: ExtractorPredictor, served: RecordingLM):
    served.prompts.clear()
    out = infer(
        extractor,
        {
            "instances": [
                {"text": TEXT, "drug": "Zoloft"},
                {"text": TEXT},
                {"text": TEXT, "drug": "?"},
            ]
        },
    )
    assert [p["context"] for p in out["predictions"]] == ["found", "no id", "unknown id"]
    assert sorted(served.prompts) == sorted(
        [trained(served, ZOLOFT), trained(served, UNKNOWN), trained(served, UNKNOWN)]
    )
    with pytest.raises(InvalidInput, match="instance 0: 'drug' must be a non-empty string"):
        infer(extractor, {"instances": [{"text": TEXT, "drug": 7}]})


def v2_request(*inputs: InferInput) -> InferRequest:
    return InferRequest("extractor", list(inputs), request_id="r1")


def test_v2_takes_entity_ids_as_a_tensor_named_after_the_key(
    extractor: ExtractorPredictor, served: RecordingLM
):
    served.prompts.clear()
    texts = InferInput("text", [2], "BYTES", [TEXT, TEXT])
    ids = InferInput("drug", [2], "BYTES", ["Zoloft", ""])
    response = infer(extractor, v2_request(texts, ids))
    outputs = {output.name: output for output in response.outputs}
    assert list(outputs["context"].data) == ["found", "no id"]
    assert sorted(served.prompts) == sorted([trained(served, ZOLOFT), trained(served, UNKNOWN)])
    alone = infer(extractor, v2_request(InferInput("text", [1], "BYTES", [TEXT])))
    assert [list(o.data) for o in alone.outputs if o.name == "context"] == [["no id"]]
    short = InferInput("drug", [1], "BYTES", ["Zoloft"])
    with pytest.raises(InvalidInput, match="input 'drug' must have one element per text"):
        infer(extractor, v2_request(texts, short))
    with pytest.raises(InvalidInput, match="the request has 2 inputs"):
        infer(extractor, v2_request(texts, InferInput("patient_key", [2], "BYTES", ["a", "b"])))


def test_prompt_context_is_what_the_store_knows(recipe: Recipe) -> None:
    lookup = serving_lookup(recipe)
    assert lookup is not None
    context = PromptContext(lookup)
    found, unknown = context("Zoloft"), context("Never reviewed")
    assert (found.status, unknown.status, context(None).status) == ("found", "unknown id", "no id")
    head = f"{LM.instruction}\n\nText:\n{TEXT}"
    assert found.place(head) == prompt_messages(TEXT, LM, ZOLOFT)[0]["content"]
    assert unknown.place(head) == prompt_messages(TEXT, LM, UNKNOWN)[0]["content"]
