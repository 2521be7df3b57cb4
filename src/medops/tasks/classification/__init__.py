"""``task: classification``: label a text with one of the dataset's classes."""

from medops.tasks.classification.recipe import ClassificationRecipe
from medops.tasks.spec import Task

_HERE = __name__

TASK = Task(
    name="classification",
    recipe=ClassificationRecipe,
    train=f"{_HERE}.train:train",
    evaluate=f"{_HERE}.evaluate:evaluate",
    signature=f"{_HERE}.register:signature",
    artifacts=f"{_HERE}.register:artifacts",
    pyfunc=f"{_HERE}.pyfunc",
    review=f"{_HERE}.review:review_items",
    predictor=f"{_HERE}.serving:predictor",
    demo=f"{_HERE}.demo",
)
