"""Operator fixtures: the medops CRDs, the upstream KServe/KubeRay CRDs, defaulted CRs."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from medops.operator.schema import load_crds, validate_resource
from tests.paths import UPSTREAM_CRDS

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "manifests" / "examples"
# the timer period of the operator under test (read when medops.operator.handlers loads)
os.environ.setdefault("MEDOPS_SYNC_SECONDS", "0.3")


@pytest.fixture(scope="session")
def medops_crds() -> list[dict[str, Any]]:
    return load_crds(sorted((ROOT / "manifests" / "crds").glob("*.yaml")))


@pytest.fixture(scope="session")
def upstream_crds() -> list[dict[str, Any]]:
    """KServe and KubeRay CRDs vendored in tests/crds: never skipped, the generated
    objects must be checked against the real schemas."""
    files = sorted(UPSTREAM_CRDS.glob("*.yaml"))
    if not files:
        pytest.fail(f"upstream CRDs not found in {UPSTREAM_CRDS}")
    return load_crds(files)


def example(name: str) -> dict[str, Any]:
    return yaml.safe_load((EXAMPLES / name).read_text())


@pytest.fixture
def finetune(medops_crds: list[dict[str, Any]]) -> dict[str, Any]:
    """The inline-recipe example as the API server stores it: defaulted, with a uid."""
    obj = example("finetune-inline.yaml")
    obj["metadata"]["uid"] = "0b6f2c1e-finetune"
    return validate_resource(obj, medops_crds)


@pytest.fixture
def deployment(medops_crds: list[dict[str, Any]]) -> dict[str, Any]:
    obj = example("modeldeployment-medops.yaml")
    obj["metadata"]["uid"] = "7d1e9a40-deployment"
    return validate_resource(obj, medops_crds)


@pytest.fixture(scope="module")
def mlflow_registry(tmp_path_factory) -> tuple[str, Any]:
    """A real MLflow registry (SQLite) with condition-classifier versions 1 and 2, both
    approved (as `medops approve` tags them), alias champion on version 1."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    client.create_registered_model("condition-classifier")
    for version in (1, 2):
        client.create_model_version("condition-classifier", f"s3://models/condition/{version}")
        client.set_model_version_tag("condition-classifier", str(version), "approval", "approved")
    client.set_registered_model_alias("condition-classifier", "champion", "1")
    return uri, client


def write_run_results(run_dir: Path, passed: bool = True) -> None:
    """What the register and evaluate stages leave on the run volume, for status mirroring."""
    (run_dir / "register").mkdir(parents=True)
    (run_dir / "evaluate").mkdir()
    decision = {
        "passed": passed,
        "reason": "macro_f1 0.7600 >= threshold 0.7500 and >= baseline 0.7400",
        "model_uri": "models:/condition-classifier/4",
        "tags": {"mlflow_run_id": "abc123"},
    }
    (run_dir / "register" / "decision.json").write_text(json.dumps(decision))
    metrics = {"macro_f1": 0.76, "baseline_macro_f1": 0.74, "accuracy": 0.85, "n": 169}
    (run_dir / "evaluate" / "manifest.json").write_text(json.dumps({"metrics": metrics}))
