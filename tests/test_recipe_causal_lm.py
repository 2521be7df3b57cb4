import pytest

from medops.recipe import RecipeError, load_recipe
from tests.conftest import DEMO_RECIPE, EXTRACTION_RECIPE


def test_extraction_recipe_loads_as_a_causal_lm_task() -> None:
    recipe = load_recipe(EXTRACTION_RECIPE)
    assert recipe.task == "causal-lm"
    assert [f.name for f in recipe.lm.fields] == ["drug", "condition", "sentiment"]
    assert recipe.data.columns.extra == {"drug": "drugName", "sentiment": "rating"}
    assert recipe.gate.also_not_below_baseline == ["json_validity"]


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("lm.fields=[{name: dose, source: dosage}]", "lm.fields.dose.source 'dosage'"),
        ("lm.fields=[]", "at least one target field"),
        ("train.method=qlora", "qlora needs resources.use_gpu"),
        ("lm.fields=[{name: 'bad name', source: label}]", "lm.fields.0.name"),
    ],
)
def test_causal_lm_mistakes_name_the_key(override: str, needle: str) -> None:
    with pytest.raises(RecipeError, match="invalid recipe") as error:
        load_recipe(EXTRACTION_RECIPE, [override])
    assert needle in str(error.value)


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("gate.metric=condition_macro_f1", "not a classification metric"),
        ("model.max_length=1024", "at most 512"),
        ("train.method=qlora", "qlora is for task: causal-lm"),
    ],
)
def test_classification_refuses_causal_lm_settings(override: str, needle: str) -> None:
    with pytest.raises(RecipeError, match=needle):
        load_recipe(DEMO_RECIPE, [override])
