"""Tasks are plug-ins: the built-in two, their own recipe keys, and a third added as a module."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

import pytest

import medops.tasks
from medops.errors import ConfigurationError
from medops.recipe import RecipeError, build_recipe
from medops.stages import run_stage
from medops.tasks import get_task, tasks
from tests.conftest import demo_raw

PLUGINS = Path(__file__).parent / "plugins"


@pytest.fixture
def with_toy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(medops.tasks, "__path__", [*medops.tasks.__path__, str(PLUGINS)])


def test_the_built_in_tasks_are_found() -> None:
    assert set(tasks()) == {"classification", "causal-lm", "instruct"}
    with pytest.raises(ConfigurationError, match="use one of causal-lm, classification, instruct"):
        get_task("summarisation")


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        (["train.grad_accum=4"], "train.grad_accum: unknown key; allowed here: batch_size"),
        (["train.precision=bf16"], "train.precision: unknown key; allowed here: batch_size"),
        (["lm.max_new_tokens=8"], "lm: unknown key; allowed here: cluster"),
        (
            ["task=causal-lm", "train.probe_c=3"],
            "train.probe_c: unknown key; allowed here: batch_size",
        ),
        (["task=summarise"], "task: 'summarise' is not a task; use one of"),
    ],
)
def test_a_key_of_another_task_is_refused(overrides: list[str], needle: str) -> None:
    with pytest.raises(RecipeError, match=needle):
        build_recipe(demo_raw(), overrides)


def test_every_label_is_kept_unless_the_recipe_limits_them() -> None:
    raw = demo_raw()
    raw["data"].pop("top_k_classes", None)
    assert build_recipe(raw).data.top_k_classes is None


def test_a_third_task_is_one_module(with_toy: None, prepared_dir: Path, tmp_path: Path) -> None:
    recipe = build_recipe(demo_raw(), ["task=toy", "toy.smoothing=0.5"])
    assert type(recipe).__name__ == "ToyRecipe" and recipe.toy.smoothing == 0.5
    with pytest.raises(RecipeError, match="train.probe_c: unknown key; allowed here: batch_size"):
        build_recipe(demo_raw(), ["task=toy", "train.probe_c=3"])

    trained = tmp_path / "trained"
    run_stage("train", recipe, trained, {"prepared": prepared_dir})
    manifest = run_stage(
        "evaluate", recipe, tmp_path / "evaluated", {"prepared": prepared_dir, "trained": trained}
    )
    rows = [json.loads(line) for line in (prepared_dir / "test.jsonl").read_text().splitlines()]
    majority = json.loads((trained / "model" / "majority.json").read_text())
    train_rows = (prepared_dir / "train.jsonl").read_text().splitlines()
    assert majority == Counter(json.loads(r)["label"] for r in train_rows).most_common(1)[0][0]
    expected = sum(r["label"] == majority for r in rows) / len(rows)
    assert manifest.metrics["accuracy"] == pytest.approx(expected)

    # registered as its own pyfunc, then served by `medops serve`'s predictor factory
    gated = recipe.model_copy(
        update={
            "gate": recipe.gate.model_copy(
                update={"metric": "accuracy", "min_value": 0.0, "not_below_baseline": False}
            )
        }
    )
    stages = {"prepared": prepared_dir, "trained": trained, "evaluated": tmp_path / "evaluated"}
    registered = run_stage("register", gated, tmp_path / "registered", stages)
    assert registered.extra["gate_passed"] is True
    predictor = get_task("toy").function("predictor")(
        gated, registered.extra["model_uri"], registered.extra["tracking_uri"]
    )
    assert predictor.load() is True
    answer, _ = asyncio.run(predictor({"instances": ["any text", "another"]}))
    assert answer == {"predictions": [{"label": majority}, {"label": majority}]}
    predictor.stop()
