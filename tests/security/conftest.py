"""Security tests use the operator's fixtures (CRDs, defaulted example resources)."""

from tests.operator.conftest import (
    deployment,
    finetune,
    medops_crds,
    mlflow_registry,
    upstream_crds,
)

__all__ = ["deployment", "finetune", "medops_crds", "mlflow_registry", "upstream_crds"]
