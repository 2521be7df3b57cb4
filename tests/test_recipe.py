from pathlib import Path

import pytest

from medops.recipe import RecipeError, apply_overrides, build_recipe, load_recipe, parse_override
from tests.conftest import DEMO_RECIPE, demo_raw


def test_demo_recipe_loads_with_its_sections() -> None:
    recipe = load_recipe(DEMO_RECIPE)
    assert recipe.name == "condition-demo"
    assert recipe.train.method == "lora"
    assert recipe.resources.num_workers == 2
    assert {s.role for s in recipe.data.sources} == {"train", "test"}


def test_unknown_key_names_key_and_allowed_keys() -> None:
    with pytest.raises(RecipeError) as error:
        load_recipe(DEMO_RECIPE, ["train.epochz=3"])
    message = str(error.value)
    assert "train.epochz: unknown key" in message
    assert "epochs" in message and "learning_rate" in message


def test_bad_literal_names_allowed_values() -> None:
    with pytest.raises(RecipeError, match=r"train.method: 'adapter' is not allowed; use one of"):
        load_recipe(DEMO_RECIPE, ["train.method=adapter"])


def test_out_of_range_value_names_key() -> None:
    with pytest.raises(RecipeError, match=r"train.epochs: Input should be greater than"):
        load_recipe(DEMO_RECIPE, ["train.epochs=0"])


def test_overrides_are_parsed_as_yaml_and_change_the_hash() -> None:
    base = load_recipe(DEMO_RECIPE)
    changed = load_recipe(DEMO_RECIPE, ["train.epochs=7", "train.lora.targets=[query]"])
    assert changed.train.epochs == 7
    assert changed.train.lora.targets == ["query"]
    assert changed.content_hash() != base.content_hash()
    assert load_recipe(DEMO_RECIPE).content_hash() == base.content_hash()


@pytest.mark.parametrize("text", ["train.epochs", "=3", "train..epochs=3"])
def test_malformed_override_is_explained(text: str) -> None:
    with pytest.raises(RecipeError, match="expected key.sub=value"):
        parse_override(text)


def test_override_into_a_value_is_refused() -> None:
    with pytest.raises(RecipeError, match="train.epochs is a value, not a section"):
        apply_overrides(demo_raw(), ["train.epochs.x=1"])


def test_missing_test_source_is_refused() -> None:
    raw = demo_raw()
    raw["data"]["sources"] = [s for s in raw["data"]["sources"] if s["role"] == "train"]
    with pytest.raises(RecipeError, match="role: test"):
        build_recipe(raw)


def test_missing_file_and_non_mapping(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="does not exist"):
        load_recipe(tmp_path / "nope.yaml")
    bad = tmp_path / "list.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(RecipeError, match="top level must be a mapping"):
        load_recipe(bad)
