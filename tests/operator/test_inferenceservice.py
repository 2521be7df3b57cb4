"""ModelDeployment + version -> InferenceService, checked against KServe's own CRD.

Generative (causal-LM) versions: the same `medops serve` command, plus API keys from a
Secret whose name the operator derives, GPU and Knative concurrency autoscaling.
"""

from __future__ import annotations

import copy
import json

import pytest

from medops.operator.inferenceservice import (
    SPEC_HASH_ANNOTATION,
    DeploymentSpecError,
    FeastWiring,
    api_keys_secret,
    build_inferenceservice,
    knative_annotations,
)
from medops.operator.schema import SchemaError, validate_resource
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


# --- generative (causal-LM) versions: medops serve, API keys, concurrency autoscaling ---

KEYS_FILE = "/etc/medops-api-keys/keys"


@pytest.fixture
def generative(medops_crds):
    obj = validate_resource(example("modeldeployment-generative.yaml"), medops_crds)
    obj["metadata"]["uid"] = "gen-uid"
    return obj


def _container(isvc):
    (container,) = isvc["spec"]["predictor"]["containers"]
    return container


def _env(container):
    return {e["name"]: e.get("value") for e in container["env"]}


def _volumes(isvc):
    return {v["name"]: v for v in isvc["spec"]["predictor"]["volumes"]}


def _mounts(container):
    return {m["name"]: m for m in container["volumeMounts"]}


def test_generative_version_runs_medops_serve_with_gpu_and_concurrency_scaling(
    generative, upstream_crds
):
    isvc = validate_resource(
        build_inferenceservice(generative, "5", task="causal-lm"), upstream_crds
    )
    predictor = isvc["spec"]["predictor"]
    container = _container(isvc)
    # the very command of the medops runtime: the recipe's task makes it generative
    assert container["command"] + container["args"] == [
        "medops",
        "serve",
        "/etc/medops/recipe.yaml",
        "serve.host=0.0.0.0",
        "serve.port=8080",
        "--model-uri",
        "models:/condition-extractor/5",
    ]
    amounts = {"cpu": "4", "memory": "8Gi", "nvidia.com/gpu": "1"}
    assert container["resources"] == {"requests": amounts, "limits": amounts}
    assert predictor["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert predictor["annotations"] == {
        "autoscaling.knative.dev/class": "kpa.autoscaling.knative.dev",
        "autoscaling.knative.dev/metric": "concurrency",
        "autoscaling.knative.dev/target": "8",
    }
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (1, 3)
    assert (predictor["scaleMetric"], predictor["scaleTarget"]) == ("concurrency", 8)
    assert predictor["canaryTrafficPercent"] == 10
    assert container["securityContext"] == RESTRICTED
    assert predictor["securityContext"]["runAsNonRoot"] is True


def test_generative_version_mounts_the_derived_keys_secret_read_only(generative, upstream_crds):
    isvc = validate_resource(
        build_inferenceservice(generative, "5", task="causal-lm"), upstream_crds
    )
    container = _container(isvc)
    keys = _volumes(isvc)["api-keys"]["secret"]
    assert keys == {
        "secretName": "extraction-api-keys",
        "items": [{"key": "keys", "path": "keys"}],
        "defaultMode": 0o440,
        "optional": False,  # a missing Secret keeps the pod waiting, never serving keyless
    }
    mount = _mounts(container)["api-keys"]
    assert mount == {"name": "api-keys", "mountPath": "/etc/medops-api-keys", "readOnly": True}
    assert _env(container)["MEDOPS_API_KEYS_FILE"] == KEYS_FILE
    assert f"{mount['mountPath']}/{keys['items'][0]['path']}" == KEYS_FILE
    # the MLflow wiring is still there beside it
    assert container["envFrom"] == [{"secretRef": {"name": "medops-mlflow-credentials"}}]


def test_no_volume_is_mounted_inside_another(generative):
    """The kubelet cannot create a mount point inside a (read-only) ConfigMap volume: the
    keys must not go under the recipe's /etc/medops."""
    paths = [
        m["mountPath"]
        for m in _container(build_inferenceservice(generative, "5", task="causal-lm"))[
            "volumeMounts"
        ]
    ]
    for outer in paths:
        for inner in paths:
            assert inner == outer or not inner.startswith(outer.rstrip("/") + "/"), (outer, inner)


@pytest.mark.parametrize(
    ("task", "api_keys", "mounted"),
    [
        ("causal-lm", None, True),  # generative: on by default
        ("causal-lm", False, False),
        ("classification", None, False),  # as before this change
        (None, None, False),  # a version without medops' task tag
        ("classification", True, True),
    ],
)
def test_api_keys_follow_the_flag_and_the_task(deployment, task, api_keys, mounted):
    if api_keys is not None:
        deployment["spec"]["auth"] = {"apiKeys": api_keys}
    isvc = build_inferenceservice(deployment, "7", task=task)
    container = _container(isvc)
    assert ("api-keys" in _volumes(isvc)) is mounted
    assert ("api-keys" in _mounts(container)) is mounted
    assert ("MEDOPS_API_KEYS_FILE" in _env(container)) is mounted
    expected = "condition-api-keys" if mounted else None
    assert api_keys_secret(deployment, task) == expected


def test_the_spec_cannot_choose_the_keys_secret(generative, medops_crds):
    written = example("modeldeployment-generative.yaml")
    written["spec"]["auth"]["secretName"] = "someone-elses-secret"
    with pytest.raises(SchemaError) as caught:
        validate_resource(written, medops_crds)
    assert any(e.startswith("spec.auth.secretName: unknown field") for e in caught.value.errors)
    # even past the schema, the builder reads only the flag
    generative["spec"]["auth"]["secretName"] = "someone-elses-secret"
    isvc = build_inferenceservice(generative, "5", task="causal-lm")
    assert _volumes(isvc)["api-keys"]["secret"]["secretName"] == "extraction-api-keys"
    assert "someone-elses-secret" not in json.dumps(isvc)


def test_classification_and_huggingface_objects_are_unchanged(deployment, hf_deployment):
    """Pinned hashes: a different object would re-roll every existing deployment when the
    operator is upgraded. Last changed on purpose: predictors mount no service account
    token and their /tmp is bounded (issue 22), so every deployment re-rolls once."""
    medops = build_inferenceservice(deployment, "7", task="classification")
    assert medops == build_inferenceservice(deployment, "7")
    assert medops["metadata"]["annotations"][SPEC_HASH_ANNOTATION] == "ef73608eae291eb6"
    assert "annotations" not in medops["spec"]["predictor"]
    # a generative version on KServe's Hugging Face runtime stays KServe's server
    hf = build_inferenceservice(hf_deployment, "3", "s3://models/discharge/3", task="causal-lm")
    assert hf == build_inferenceservice(hf_deployment, "3", "s3://models/discharge/3")
    assert hf["metadata"]["annotations"][SPEC_HASH_ANNOTATION] == "22e8d88f7e652285"


def test_cpu_scaling_gets_no_knative_metric(generative):
    generative["spec"]["autoscaling"]["metric"] = "cpu"
    predictor = build_inferenceservice(generative, "5", task="causal-lm")["spec"]["predictor"]
    assert "annotations" not in predictor and predictor["scaleMetric"] == "cpu"
    assert (
        knative_annotations({"metric": "rps", "target": 4})["autoscaling.knative.dev/metric"]
        == "rps"
    )


def test_keys_on_the_huggingface_runtime_or_too_long_a_name_say_why(hf_deployment, generative):
    hf_deployment["spec"]["auth"] = {"apiKeys": True}
    with pytest.raises(DeploymentSpecError, match="auth.apiKeys needs runtime medops"):
        build_inferenceservice(hf_deployment, "3", "s3://models/discharge/3")
    generative["metadata"]["name"] = "x" * 250
    with pytest.raises(DeploymentSpecError, match="longer than 253"):
        build_inferenceservice(generative, "5", task="causal-lm")


# --- the chart's Feast: config and passwords for medops predictors, only when enabled ---

FEAST = FeastWiring("medops-feast", "medops-feast-redis", "medops-feast-registry")


def test_feast_wiring_comes_from_the_operators_environment_only_when_enabled():
    assert FeastWiring.from_env({}) is None
    assert FeastWiring.from_env({"MEDOPS_FEAST_REDIS_CREDENTIAL_REF": "r"}) is None  # no ConfigMap
    env = {
        "MEDOPS_FEAST_CONFIGMAP": "medops-feast",
        "MEDOPS_FEAST_REDIS_CREDENTIAL_REF": "medops-feast-redis",
        "MEDOPS_FEAST_REGISTRY_CREDENTIAL_REF": "medops-feast-registry",
    }
    assert FeastWiring.from_env(env) == FEAST
    assert FeastWiring.from_env({"MEDOPS_FEAST_CONFIGMAP": "c"}) == FeastWiring("c")


def test_with_feast_the_predictor_mounts_the_charts_config_and_reads_passwords_from_secrets(
    generative, upstream_crds
):
    isvc = validate_resource(
        build_inferenceservice(generative, "5", task="causal-lm", feast=FEAST), upstream_crds
    )
    container = _container(isvc)
    assert _volumes(isvc)["feast"]["configMap"] == {
        "name": "medops-feast",
        "items": [{"key": "feature_store.yaml", "path": "feature_store.yaml"}],
    }
    mount = _mounts(container)["feast"]
    assert mount == {"name": "feast", "mountPath": "/etc/medops-feast", "readOnly": True}
    env = {e["name"]: e for e in container["env"]}
    assert env["MEDOPS_FEATURE_STORE_CONFIG"]["value"] == "/etc/medops-feast/feature_store.yaml"
    assert env["REDIS_PASSWORD"] == {
        "name": "REDIS_PASSWORD",
        "valueFrom": {"secretKeyRef": {"name": "medops-feast-redis", "key": "password"}},
    }
    assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "medops-feast-registry"
    # the API keys stay as they were, and no mount sits inside another
    assert _mounts(container)["api-keys"]["mountPath"] == "/etc/medops-api-keys"
    paths = [m["mountPath"] for m in container["volumeMounts"]]
    assert all(not a.startswith(b + "/") for a in paths for b in paths)


def test_without_feast_or_passwords_nothing_of_it_is_added(deployment, hf_deployment):
    plain = build_inferenceservice(deployment, "7")
    assert "feast" not in json.dumps(plain["spec"])
    assert "MEDOPS_FEATURE_STORE_CONFIG" not in _env(_container(plain))
    bare = _container(build_inferenceservice(deployment, "7", feast=FeastWiring("medops-feast")))
    assert {"MEDOPS_FEATURE_STORE_CONFIG"} <= set(_env(bare))
    assert not {"REDIS_PASSWORD", "PGPASSWORD"} & set(_env(bare))
    # KServe's Hugging Face runtime does not run medops: it gets none of it
    hf = build_inferenceservice(hf_deployment, "3", "s3://models/discharge/3", feast=FEAST)
    assert hf == build_inferenceservice(hf_deployment, "3", "s3://models/discharge/3")


def test_the_spec_cannot_name_the_feature_store(deployment, medops_crds):
    """The store's address comes from the chart, never from whoever writes a ModelDeployment."""
    written = copy.deepcopy(deployment)
    written["spec"]["featureStore"] = {"configMap": "someone-elses"}
    with pytest.raises(SchemaError):
        validate_resource(written, medops_crds)
    isvc = build_inferenceservice(written, "7", feast=FEAST)
    assert "someone-elses" not in json.dumps(isvc)
