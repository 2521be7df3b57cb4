"""A TextClassifier answering a frame: ``text`` (and optional ``context``) in; ``label``
plus one probability column per class out.

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
        # a model with side inputs reads each row's context (features as of the note);
        # rows without one are scored as having no history
        contexts = model_input["context"].tolist() if "context" in model_input else None
        probabilities = self.model.predict_proba(texts, contexts)
        frame = pd.DataFrame(probabilities, columns=self.model.labels)
        frame.insert(0, "label", [self.model.labels[i] for i in probabilities.argmax(axis=1)])
        return frame
