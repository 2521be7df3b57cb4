"""``task: instruct``: a chat model fine-tuned on the user's own instruction or chat data.

Reads prompt/response, Alpaca, ShareGPT and OpenAI-messages files (``formats``), trains with
the causal-LM loop with the loss on every assistant turn, scores the final turn of held-out
conversations against the untuned base, and serves on the OpenAI chat route.
"""

from medops.tasks.instruct.recipe import InstructRecipe
from medops.tasks.spec import Task

_HERE = __name__

TASK = Task(
    name="instruct",
    recipe=InstructRecipe,
    prepare=f"{_HERE}.prepare:prepare",
    train=f"{_HERE}.train:train",
    evaluate=f"{_HERE}.evaluate:evaluate",
    signature=f"{_HERE}.register:signature",
    artifacts=f"{_HERE}.register:artifacts",
    pyfunc=f"{_HERE}.pyfunc",
    review=f"{_HERE}.review:review_items",
    predictor=f"{_HERE}.serving:ChatPredictor",
    resumable=True,
    dry_run=True,
)
