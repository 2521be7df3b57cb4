"""KFP pipeline definitions, one builder per recipe task."""

from pipelines.classification import STAGE_OUTPUTS, build_pipeline

__all__ = ["STAGE_OUTPUTS", "build_pipeline"]
