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

    def conversation(self, text: str) -> list[dict[str, str]]:
        from medops.tasks.instruct.examples import with_system

        return with_system([{"role": "user", "content": text}], self.lm.system_prompt)

    def predict(
        self, context: PythonModelContext, model_input: pd.DataFrame, params: Any = None
    ) -> pd.DataFrame:
        return pd.DataFrame({"answer": self.answers(model_input)})


mlflow.models.set_model(ChatPyfunc())
