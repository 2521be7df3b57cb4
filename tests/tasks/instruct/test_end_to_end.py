"""A tiny model trained on a ``messages`` file, registered, then asked through the openai
client: the whole instruct path, with the task's system prompt put first by the server."""

from __future__ import annotations

import json

import openai
import pytest

from medops.model.chat import render_prompt
from medops.model.registered import fetch_model
from medops.registry.tracking import tracking_uri
from medops.serve.server import build_app, data_plane, default_model_uri
from medops.stages import run_stage
from medops.tasks.instruct.serving import ChatPredictor
from tests.serve.test_openai_routes import running
from tests.tasks.instruct.conftest import instruct_recipe

SYSTEM = "You name the drug for the case number."


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, tiny_lm_dir):
    from tests.tasks.instruct.conftest import qa_records, write_jsonl

    tmp = tmp_path_factory.mktemp("instruct-e2e")
    train = write_jsonl(tmp / "train.jsonl", qa_records("t", 24))
    test = write_jsonl(tmp / "test.jsonl", qa_records("h", 4))
    sources = [{"uri": str(train), "role": "train"}, {"uri": str(test), "role": "test"}]
    recipe = instruct_recipe(
        tmp,
        tiny_lm_dir,
        sources,
        f"lm.system_prompt={json.dumps(SYSTEM)}",
        "gate.min_value=0.0",
        "gate.significant=false",
        "gate.not_below_baseline=false",
        "serve.deidentify_input=false",
        "serve.redact_output=false",
    )
    stages = {}
    for name, inputs in (
        ("prepare", {}),
        ("train", {"prepared": "prepare"}),
        ("evaluate", {"prepared": "prepare", "trained": "train"}),
        ("register", {"prepared": "prepare", "trained": "train", "evaluated": "evaluate"}),
    ):
        out = tmp / name
        stages[name] = run_stage(name, recipe, out, {k: tmp / v for k, v in inputs.items()})
    return recipe, stages, tmp


def test_trains_on_every_answer_and_scores_against_the_base(pipeline):
    _, stages, tmp = pipeline
    assert stages["train"].counts["train_kept"] == stages["prepare"].counts["train"]
    metrics = stages["evaluate"].metrics
    for name in ("rouge_l", "exact_match", "token_f1", "answer_chars", "empty_or_refusal"):
        assert metrics[f"{name}_ci_low"] <= metrics[name] <= metrics[f"{name}_ci_high"]
        assert f"baseline_{name}" in metrics and f"{name}_diff_ci_low" in metrics
    report = (tmp / "evaluate" / "report.html").read_text(encoding="utf-8")
    assert "Case h0: which drug is number 0?" in report, "de-identified examples are shown"
    assert stages["register"].extra["gate_passed"]


def test_the_registered_version_answers_through_the_openai_client(pipeline):
    recipe, _, _ = pipeline
    predictor = ChatPredictor(recipe, default_model_uri(recipe), tracking_uri(recipe))
    predictor.load()
    assert predictor.generator is not None
    assert predictor.generator.system_prompt == SYSTEM, "the template comes from the version"
    app = build_app([predictor], data_plane(recipe, predictor))
    with running(app) as port:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/openai/v1", api_key="x")
        reply = client.chat.completions.create(
            model=recipe.serve.model_name,
            messages=[{"role": "user", "content": "Case h1: which drug is number 1?"}],
            max_tokens=4,
        )
    assert reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage is not None and 0 < reply.usage.completion_tokens <= 4
    # the prompt the server built is the task's system turn, then the caller's turn
    tokenizer = predictor.generator.tokenizer
    user = {"role": "user", "content": "Case h1: which drug is number 1?"}
    with_system = render_prompt(tokenizer, [{"role": "system", "content": SYSTEM}, user])
    expected = len(tokenizer(with_system, add_special_tokens=False)["input_ids"])
    assert reply.usage.prompt_tokens == expected


def test_the_registered_pyfunc_answers_a_frame_of_user_turns(pipeline):
    import mlflow
    import pandas as pd
    from mlflow.exceptions import MlflowException

    recipe, stages, _ = pipeline
    # resolved with explicit URIs: no process-wide MLflow state for later tests to inherit
    local = fetch_model(stages["register"].extra["model_uri"], tracking_uri(recipe))
    model = mlflow.pyfunc.load_model(local)
    frame = model.predict(pd.DataFrame({"text": ["Case h2: which drug is number 2?"]}))
    assert list(frame.columns) == ["answer"] and len(frame) == 1
    with pytest.raises(MlflowException, match=r"missing inputs \['text'\]"):
        model.predict(pd.DataFrame({"prompt": ["x"]}))  # the registered signature says so


def test_the_registered_champion_answers_the_same_conversations(pipeline):
    recipe, stages, tmp = pipeline
    gate = recipe.gate.model_copy(update={"against_champion": True})
    inputs = {"prepared": tmp / "prepare", "trained": tmp / "train"}
    out = tmp / "evaluate-against-champion"
    metrics = run_stage("evaluate", recipe.model_copy(update={"gate": gate}), out, inputs).metrics
    # the champion is the version registered from these very weights, fetched and checked
    # as serving fetches it: the same answers, so every paired difference is exactly 0
    assert metrics["champion_exists"] == 1.0
    for name in ("rouge_l", "token_f1"):
        assert metrics[f"champion_{name}"] == stages["evaluate"].metrics[name]
        ends = ("", "_ci_low", "_ci_high")
        assert [metrics[f"{name}_vs_champion_diff{end}"] for end in ends] == [0.0, 0.0, 0.0]
