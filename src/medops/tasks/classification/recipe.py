"""The recipe of ``task: classification``: a text encoder, a logistic head, LoRA tuning."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from medops.recipe import Evaluation, Recipe, Train

METRICS = ("macro_f1", "micro_f1", "weighted_f1", "accuracy")


class ClassificationTrain(Train):
    class_weighting: bool = True
    head_refit: bool = Field(
        True, description="refit the logistic head on the tuned encoder's embeddings"
    )
    probe_c: float = Field(10.0, gt=0.0, description="inverse L2 strength of the logistic head")


class ClassificationRecipe(Recipe):
    """Labels from ``data.columns.label``; the model answers a class and its probabilities."""

    task: Literal["classification"] = "classification"
    train: ClassificationTrain = Field(default_factory=ClassificationTrain)
    evaluate: Evaluation = Field(default_factory=Evaluation)

    @model_validator(mode="after")
    def _classification_checks(self) -> ClassificationRecipe:
        if self.gate.metric not in METRICS:
            raise ValueError(
                f"gate.metric {self.gate.metric!r} is not a classification metric; "
                f"use one of {', '.join(METRICS)}"
            )
        sliceable = self.features.sliceable if self.features else ()
        self.evaluate.check_slices(list(self.data.columns.extra), sliceable)
        if self.model.max_length > 512:
            raise ValueError("model.max_length: a classification encoder takes at most 512")
        if self.train.method == "qlora":
            raise ValueError("train.method qlora is for task: causal-lm")
        return self
