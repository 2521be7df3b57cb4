"""MLflow "model from code": the pyfunc that wraps a saved TextClassifier.

Logged as code (no pickle), so loading it needs only medops installed and the model
directory the run stored as an artifact. Output: ``label`` plus one column per class.
"""

from __future__ import annotations

from typing import Any

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel, PythonModelContext


class ClassifierPyfunc(PythonModel):
    def load_context(self, context: PythonModelContext) -> None:
        from medops.model.classifier import TextClassifier

        self.model = TextClassifier.load(context.artifacts["model"])

    def predict(
        self, context: PythonModelContext, model_input: pd.DataFrame, params: Any = None
    ) -> pd.DataFrame:
        if "text" not in model_input.columns:
            raise ValueError(f"input needs a 'text' column; got {list(model_input.columns)}")
        texts = [str(t) for t in model_input["text"].tolist()]
        probabilities = self.model.predict_proba(texts)
        frame = pd.DataFrame(probabilities, columns=self.model.labels)
        frame.insert(0, "label", [self.model.labels[i] for i in probabilities.argmax(axis=1)])
        return frame


mlflow.models.set_model(ClassifierPyfunc())
