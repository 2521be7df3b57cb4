"""Serving registered extraction versions: adapters on one base, v1/v2 extraction answers."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import mlflow
import pytest

from medops.evaluate.generation_metrics import parse_answer
from medops.recipe import Recipe
from medops.registry.stage import log_version
from medops.registry.tracking import TRACKING_ENV, artifact_location, tracking_uri
from medops.serve.model import Batch
from medops.tasks import get_task
from medops.tasks.causal_lm.serving import ExtractorPredictor, load_generator
from tests.conftest import tiny_lm_overrides
from tests.serve.test_chat_model import tiny_adapter


def register_versions(recipe: Recipe, base: Path, root: Path, seeds: list[int]) -> list[str]:
    """One registered version per seed: the tiny base as merged model, a LoRA adapter, lm.json."""
    uri = tracking_uri(recipe)
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.create_experiment("lm-serve-test", artifact_location(recipe))
    lm = root / "lm.json"
    lm.write_text(json.dumps(recipe.lm.model_dump(mode="json")))  # type: ignore[attr-defined]
    vocabulary = root / "deid_vocabulary.json"
    vocabulary.write_text(json.dumps(["lisinopril"]))
    versions = []
    previous = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MLFLOW_TRACKING_URI", raising=False)
        mlflow.set_tracking_uri(uri)
        try:
            for seed in seeds:
                adapter = tiny_adapter(base, root / f"adapter-{seed}", seed)
                with mlflow.start_run(experiment_id=experiment):
                    version = log_version(
                        get_task("causal-lm"),
                        {
                            "model": str(base),
                            "lm": str(lm),
                            "adapter": str(adapter),
                            "deid_vocabulary": str(vocabulary),
                        },
                        None,
                        recipe.registry.model_name,
                        client,
                    )
                versions.append(version)
        finally:
            mlflow.set_tracking_uri(previous)
    client.set_registered_model_alias(recipe.registry.model_name, "champion", versions[0])
    return versions


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory, tiny_lm_dir: Path):
    root = tmp_path_factory.mktemp("lm-serve")
    with pytest.MonkeyPatch.context() as environment:
        environment.delenv(TRACKING_ENV, raising=False)
        environment.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        recipe = tiny_lm_overrides(root / "run", tiny_lm_dir)
        versions = register_versions(recipe, tiny_lm_dir, root, [1, 2])
        name = recipe.registry.model_name
        serve = recipe.serve.model_copy(
            update={"adapters": {"challenger": f"models:/{name}/{versions[1]}"}}
        )
        yield recipe.model_copy(update={"serve": serve}), f"models:/{name}@champion"


def test_champion_and_challenger_share_one_base(registered):
    recipe, champion = registered
    served, lm = load_generator(recipe, champion, tracking_uri(recipe))
    assert served.model_names() == [recipe.serve.model_name, "challenger"]
    assert sorted(served.model.peft_config) == sorted(served.model_names())
    assert [f.name for f in lm.fields] == [f.name for f in recipe.lm.fields]
    # the guard knows the registered vocabulary: a drug name is not redacted as a name
    assert "lisinopril" in served.guard.known


def test_v1_and_v2_answer_parsed_fields(registered):
    recipe, champion = registered
    predictor = ExtractorPredictor(recipe, champion, tracking_uri(recipe))
    assert predictor.load() and predictor.ready
    texts = ["Lisinopril gave me a cough.", "Sertraline, better mood."]

    async def both():
        v1 = await predictor.postprocess(await predictor.predict(Batch("v1", texts)))
        v2 = await predictor.postprocess(await predictor.predict(Batch("v2", texts, "r1")))
        return v1, v2

    v1, v2 = asyncio.run(asyncio.wait_for(both(), 120))
    fields = [f.name for f in recipe.lm.fields]
    assert len(v1["predictions"]) == 2
    for answer in v1["predictions"]:
        assert set(answer) == {"answer", "json_valid", "fields"}
        assert list(answer["fields"]) == fields
        assert answer["json_valid"] == (parse_answer(answer["answer"]) is not None)
    names = [output.name for output in v2.outputs]
    assert names == ["answer", "json_valid", *fields] and v2.id == "r1"
