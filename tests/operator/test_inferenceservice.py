"""ModelDeployment + version -> InferenceService, checked against KServe's own CRD."""

from __future__ import annotations

import copy

import pytest

from medops.operator.inferenceservice import (
    SPEC_HASH_ANNOTATION,
    DeploymentSpecError,
    build_inferenceservice,
)
from medops.operator.schema import validate_resource
from tests.operator.conftest import example
from tests.operator.test_rayjob import RESTRICTED


@pytest.fixture
def hf_deployment(medops_crds):
    obj = validate_resource(example("modeldeployment-huggingface.yaml"), medops_crds)
    obj["metadata"]["uid"] = "hf-uid"
    return obj


def test_medops_runtime_runs_medops_serve_on_the_pinned_version(deployment, upstream_crds):
    isvc = validate_resource(build_inferenceservice(deployment, "7"), upstream_crds)
    predictor = isvc["spec"]["predictor"]
    (container,) = predictor["containers"]
    assert container["command"] + container["args"] == [
        "medops",
        "serve",
        "/etc/medops/recipe.yaml",
        "serve.host=0.0.0.0",
        "serve.port=8080",
        "--model-uri",
        "models:/condition-classifier/7",
    ]
    assert container["securityContext"] == RESTRICTED
    assert predictor["securityContext"]["runAsNonRoot"] is True
    volumes = {v["name"]: v for v in predictor["volumes"]}
    assert volumes["recipe"]["configMap"]["name"] == "condition-recipe"
    assert container["envFrom"] == [{"secretRef": {"name": "medops-mlflow-credentials"}}]
    assert isvc["metadata"]["annotations"]["medops.dev/model-version"] == "7"
    assert isvc["metadata"]["ownerReferences"][0]["uid"] == "7d1e9a40-deployment"
    # the chart's NetworkPolicies let pods labelled medops reach MLflow
    assert predictor["labels"]["app.kubernetes.io/name"] == "medops"


def test_autoscaling_and_canary_map_to_kserve_fields(deployment):
    predictor = build_inferenceservice(deployment, "1")["spec"]["predictor"]
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (1, 4)
    assert (predictor["scaleMetric"], predictor["scaleTarget"]) == ("concurrency", 8)
    assert predictor["canaryTrafficPercent"] == 10
    del deployment["spec"]["canaryTrafficPercent"]
    assert (
        "canaryTrafficPercent" not in build_inferenceservice(deployment, "1")["spec"]["predictor"]
    )


def test_huggingface_runtime_uses_kserve_model_format(hf_deployment, upstream_crds):
    isvc = build_inferenceservice(hf_deployment, "3", "s3://models/discharge/3")
    validate_resource(isvc, upstream_crds)
    model = isvc["spec"]["predictor"]["model"]
    assert model["modelFormat"] == {"name": "huggingface"}
    assert model["storageUri"] == "s3://models/discharge/3"
    assert model["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert model["securityContext"] == RESTRICTED
    assert isvc["spec"]["predictor"]["serviceAccountName"] == "medops-models-reader"
    assert "containers" not in isvc["spec"]["predictor"]


def test_spec_hash_changes_only_with_the_spec(deployment):
    first = build_inferenceservice(deployment, "1")["metadata"]["annotations"]
    assert (
        build_inferenceservice(copy.deepcopy(deployment), "1")["metadata"]["annotations"] == first
    )
    moved = build_inferenceservice(deployment, "2")["metadata"]["annotations"]
    assert moved[SPEC_HASH_ANNOTATION] != first[SPEC_HASH_ANNOTATION]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.pop("image"), "runtime medops needs spec.image"),
        (lambda s: s.pop("recipeRef"), "runtime medops needs spec.recipeRef"),
        (lambda s: s["autoscaling"].update(minReplicas=5), "minReplicas 5 > maxReplicas 4"),
    ],
)
def test_unbuildable_specs_say_why(deployment, edit, message):
    edit(deployment["spec"])
    with pytest.raises(DeploymentSpecError, match=message):
        build_inferenceservice(deployment, "1")


def test_huggingface_needs_a_fetchable_storage_uri(hf_deployment):
    with pytest.raises(DeploymentSpecError, match="storage location KServe can download"):
        build_inferenceservice(hf_deployment, "3", None)
