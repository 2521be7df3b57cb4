"""MLflow "model from code": the pyfunc that wraps a fine-tuned causal LM for extraction.

Logged as code (no pickle) with the merged model directory as its artifact and the recipe's
``lm`` section beside it, so the registered version prompts exactly as evaluation did.
Output: the raw ``answer``, whether it is valid JSON, and one column per target field.
"""

from __future__ import annotations

from typing import Any

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModelContext

from medops.tasks.causal_lm.generator_pyfunc import GeneratorPyfunc


class ExtractorPyfunc(GeneratorPyfunc):
    settings = "medops.tasks.causal_lm.recipe:LanguageTask"

    def conversation(self, text: str) -> list[dict[str, str]]:
        from medops.tasks.causal_lm.examples import prompt_messages

        return prompt_messages(text, self.lm)

    def predict(
        self, context: PythonModelContext, model_input: pd.DataFrame, params: Any = None
    ) -> pd.DataFrame:
        from medops.evaluate.generation_metrics import parse_answer

        rows = []
        for answer in self.answers(model_input):
            parsed = parse_answer(answer)
            row = {"answer": answer, "json_valid": parsed is not None}
            row.update({f.name: (parsed or {}).get(f.name, "") for f in self.lm.fields})
            rows.append(row)
        return pd.DataFrame(rows)


mlflow.models.set_model(ExtractorPyfunc())
