"""Serving a registered classifier: the class and its probabilities, over v1 and v2.

A version is built from its data only, as generative versions are: the encoder's
safetensors weights, tokenizer and config files, the head's safetensors and the labels'
JSON, once every file has passed ``medops.registry.integrity`` (no pickle, no code, the
digests registration recorded). The registered MLflow pyfunc is never loaded, so nothing
a registry writer puts in a version runs in the predictor.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from kserve.protocol.infer_type import InferResponse

from medops.errors import ConfigurationError
from medops.features.online import FeatureLookup, serving_lookup, serving_repo
from medops.model.classifier import TextClassifier
from medops.model.precision import serving_dtype
from medops.recipe import Recipe
from medops.registry.integrity import fetch_checked
from medops.serve import v1, v2
from medops.serve.model import PyfuncPredictor, Scored
from medops.tasks.classification import TASK
from medops.tasks.classification.frames import FrameClassifier

logger = logging.getLogger("kserve.medops")


class ClassifierPredictor(PyfuncPredictor):
    """The model answers a ``label`` column and one probability column per class."""

    classes: list[str]

    def load(self) -> bool:
        """The checked version's classifier, built by medops' installed code."""
        code_file = TASK.pyfunc_path().name  # what MLflow wrote for the pyfunc: never run
        artifacts = fetch_checked(self.model_uri, self.tracking_uri, code_file)
        if "model" not in artifacts:
            raise ConfigurationError(f"{self.model_uri} has no 'model' artifact to serve")
        self.attach_classifier(TextClassifier.load(artifacts["model"]), artifacts)
        return self.ready

    def attach_classifier(self, model: TextClassifier, artifacts: dict[str, Path]) -> None:
        """Serve ``model`` in ``serve.dtype`` (auto: bf16 where the CPU has it natively; the
        evaluate stage reports how often bf16 and float32 agree on the held-out rows)."""
        dtype = serving_dtype(self.recipe.serve.dtype)
        self.context = self._feature_lookup(model)
        self.attach(FrameClassifier(model.to(dtype)), artifacts)
        logger.info("loaded %s (encoder in %s)", self.model_uri, str(dtype).removeprefix("torch."))

    def _feature_lookup(self, model: TextClassifier) -> FeatureLookup | None:
        """The online store a model with context features reads, per request, by the id each
        instance names (``{"text": ..., "drug": "Zoloft"}``); the recipe's store
        (``features:``, built and materialized by prepare). Without one, every request is
        scored as "no history", which the log says once."""
        if model.side is None:
            return None
        lookup = serving_lookup(self.recipe)
        if lookup is None:
            logger.warning(
                "%s reads context features (%s) but the recipe names no feature store at %s: "
                "every request is scored as having no history",
                self.model_uri,
                ", ".join(model.side.names),
                serving_repo(self.recipe),
            )
            return None
        logger.info("context features by request key %r", lookup.key)
        return lookup

    def check(self, frame: pd.DataFrame) -> None:
        if "label" not in frame.columns or len(frame.columns) < 3:
            raise ConfigurationError(
                f"{self.model_uri}: predict must return a 'label' column and one probability "
                f"column per class (at least two); got columns {list(frame.columns)}"
            )
        self.classes = [str(column) for column in frame.columns if column != "label"]

    def encode(self, result: Scored) -> dict | InferResponse:
        labels = [str(label) for label in result.frame["label"]]
        probabilities = result.frame[self.classes].to_numpy(dtype=np.float32)
        context = result.frame["context"].tolist() if "context" in result.frame else None
        if result.batch.protocol == "v2":
            return v2.encode(
                labels,
                self.classes,
                probabilities,
                model_name=self.name,
                request_id=result.batch.request_id,
                context=context,
            )
        return v1.encode(labels, self.classes, probabilities, context)

    def get_output_types(self) -> list[dict]:
        """v2 metadata has no room for names: the class count is in the shapes, the names
        come with every response in the ``classes`` output."""
        k = len(self.classes)
        return [
            {"name": "condition", "datatype": "BYTES", "shape": [-1]},
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, k]},
            {"name": "classes", "datatype": "BYTES", "shape": [k]},
        ]


def predictor(recipe: Recipe, model_uri: str, tracking_uri: str | None) -> ClassifierPredictor:
    """The task's serving entry point (``Task.predictor``): the recipe names the model."""
    return ClassifierPredictor(recipe, model_uri, tracking_uri=tracking_uri)
