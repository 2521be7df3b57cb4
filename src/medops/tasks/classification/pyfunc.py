"""MLflow "model from code": the pyfunc that wraps a saved TextClassifier.

Logged as code (no pickle), so ``mlflow.pyfunc.load_model`` needs only medops installed and
the model directory the run stored as an artifact. ``medops serve`` does not load it: the
predictor builds the classifier from the artifact's data (``serving.py``). Output:
``label`` plus one column per class.
"""

from __future__ import annotations

from typing import Any

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel, PythonModelContext


class ClassifierPyfunc(PythonModel):
    def load_context(self, context: PythonModelContext) -> None:
        from medops.model.classifier import TextClassifier
        from medops.tasks.classification.frames import FrameClassifier

        self.frames = FrameClassifier(TextClassifier.load(context.artifacts["model"]))

    def predict(
        self, context: PythonModelContext, model_input: pd.DataFrame, params: Any = None
    ) -> pd.DataFrame:
        return self.frames.predict(model_input)


mlflow.models.set_model(ClassifierPyfunc())
