"""``task: causal-lm``: a chat model fine-tuned to answer JSON of fields read from a text."""

from medops.tasks.causal_lm.recipe import CausalLMRecipe
from medops.tasks.spec import Task

_HERE = __name__

TASK = Task(
    name="causal-lm",
    recipe=CausalLMRecipe,
    train=f"{_HERE}.train:train",
    evaluate=f"{_HERE}.evaluate:evaluate",
    signature=f"{_HERE}.register:signature",
    artifacts=f"{_HERE}.register:artifacts",
    pyfunc=f"{_HERE}.pyfunc",
    review=f"{_HERE}.review:review_items",
    predictor=f"{_HERE}.serving:ExtractorPredictor",
    demo=f"{_HERE}.demo",
    resumable=True,
    dry_run=True,
)
