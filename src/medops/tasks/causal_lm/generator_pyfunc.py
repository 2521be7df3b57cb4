"""What a generative task's pyfunc shares: loading the merged model, tokenizer and prompt
settings, and answering a frame of texts.

Kept apart from the pyfunc modules themselves: those are logged as MLflow "model from
code" and call ``set_model`` when imported, so they cannot import each other.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
from mlflow.pyfunc import PythonModel, PythonModelContext
from pydantic import BaseModel


class GeneratorPyfunc(PythonModel):
    """Loads ``artifacts["model"]`` for generation and ``artifacts["lm"]`` as ``settings``."""

    settings: ClassVar[str]  # "module:Class" of the registered lm.json section

    def load_context(self, context: PythonModelContext) -> None:
        from medops.model.causal_lm import load_tokenizer
        from medops.model.generate import load_for_generation
        from medops.tasks.spec import load

        path = context.artifacts["model"]
        model: type[BaseModel] = load(self.settings)
        self.lm: Any = model.model_validate(
            json.loads(Path(context.artifacts["lm"]).read_text(encoding="utf-8"))
        )
        self.tokenizer = load_tokenizer(path)
        self.model = load_for_generation(path)

    def conversation(self, text: str) -> list[dict[str, str]]:
        """The chat a ``text`` input becomes, as evaluation prompted it."""
        raise NotImplementedError

    def answers(self, model_input: pd.DataFrame) -> list[str]:
        """Greedy answers to each row's ``text``, batched as evaluation batched them."""
        from medops.model.generate import generate

        if "text" not in model_input.columns:
            raise ValueError(f"input needs a 'text' column; got {list(model_input.columns)}")
        conversations = [self.conversation(str(t)) for t in model_input["text"]]
        lm = self.lm
        return generate(
            self.model, self.tokenizer, conversations, lm.max_new_tokens, lm.eval_batch_size
        )
