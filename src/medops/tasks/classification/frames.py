"""A TextClassifier answering a frame: ``text`` in; ``label`` plus one probability column
per class out.

The one scoring path of the MLflow pyfunc (for ``mlflow.pyfunc.load_model`` users) and of
the served predictor (which builds the classifier from the version's data, never from the
pyfunc), so both answer the same.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from medops.model.classifier import TextClassifier


class FrameClassifier:
    def __init__(self, model: TextClassifier) -> None:
        self.model = model

    def predict(self, model_input: pd.DataFrame) -> pd.DataFrame:
        if "text" not in model_input.columns:
            raise ValueError(f"input needs a 'text' column; got {list(model_input.columns)}")
        texts = [str(t) for t in model_input["text"].tolist()]
        probabilities = self.model.predict_proba(texts)
        frame = pd.DataFrame(probabilities, columns=self.model.labels)
        frame.insert(0, "label", [self.model.labels[i] for i in probabilities.argmax(axis=1)])
        return frame
