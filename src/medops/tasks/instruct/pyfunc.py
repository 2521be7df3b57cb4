"""MLflow "model from code": a fine-tuned chat model answering one user turn per row.

Logged as code (no pickle) with the merged model and the recipe's ``lm`` section, so
``mlflow.pyfunc.load_model`` answers with the system prompt the version was evaluated with.
"""

from __future__ import annotations

from typing import Any

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModelContext

from medops.tasks.causal_lm.generator_pyfunc import GeneratorPyfunc


class ChatPyfunc(GeneratorPyfunc):
    settings = "medops.tasks.instruct.recipe:ChatTask"

    def predict(
        self, context: PythonModelContext, model_input: pd.DataFrame, params: Any = None
    ) -> pd.DataFrame:
        from medops.model.generate import generate
        from medops.tasks.instruct.examples import with_system

        if "text" not in model_input.columns:
            raise ValueError(f"input needs a 'text' column; got {list(model_input.columns)}")
        conversations = [
            with_system([{"role": "user", "content": str(t)}], self.lm.system_prompt)
            for t in model_input["text"]
        ]
        answers = generate(
            self.model,
            self.tokenizer,
            conversations,
            self.lm.max_new_tokens,
            self.lm.eval_batch_size,
        )
        return pd.DataFrame({"answer": answers})


mlflow.models.set_model(ChatPyfunc())
