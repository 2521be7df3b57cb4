"""The medops CRDs: loadable by old API servers, and they accept/reject what they should."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from medops.operator.schema import SchemaError, errors, validate_resource
from tests.operator.conftest import EXAMPLES, example


def _walk(node: Any, path: str = ""):
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from _walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, f"{path}[{index}]")


def test_crds_are_structural_without_cel(medops_crds):
    assert {c["spec"]["names"]["kind"] for c in medops_crds} == {"FineTune", "ModelDeployment"}
    for crd in medops_crds:
        assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
        (version,) = crd["spec"]["versions"]
        assert version["subresources"] == {"status": {}}
        assert version["additionalPrinterColumns"]
        schema = version["schema"]["openAPIV3Schema"]
        for path, node in _walk(schema):
            assert "x-kubernetes-validations" not in node, path
            for junctor in ("oneOf", "anyOf", "allOf"):
                for branch in node.get(junctor, []):
                    if not node.get("x-kubernetes-int-or-string"):
                        assert "type" not in branch and "default" not in branch, path
            if "properties" in node or "items" in node:
                assert "type" in node, f"{path}: structural schemas need a type"


def test_every_default_is_valid_for_its_own_schema(medops_crds):
    for crd in medops_crds:
        schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        defaults = [(p, n) for p, n in _walk(schema) if "default" in n]
        assert defaults
        for path, node in defaults:
            assert errors(node["default"], node) == [], path


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_examples_are_accepted(name, medops_crds):
    stored = validate_resource(example(name), medops_crds)
    assert stored["spec"]  # defaults applied on top of what was written
    if stored["kind"] == "FineTune":
        assert stored["spec"]["storage"]["mountPath"] == "/mnt/medops"
    else:
        assert stored["spec"]["alias"]  # the huggingface example relies on the default


def test_defaults_fill_nested_sections(medops_crds):
    stored = validate_resource(example("modeldeployment-huggingface.yaml"), medops_crds)
    assert stored["spec"]["alias"] == "champion"
    assert stored["spec"]["resources"]["gpus"] == 1
    minimal = {
        "apiVersion": "medops.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "m"},
        "spec": {"modelName": "x", "mlflow": {"trackingUri": "http://mlflow:5000"}},
    }
    spec = validate_resource(minimal, medops_crds)["spec"]
    assert spec["runtime"] == "medops"
    assert spec["autoscaling"] == {
        "minReplicas": 1,
        "maxReplicas": 1,
        "metric": "concurrency",
        "target": 10,
    }
    assert spec["resources"] == {"cpu": "1", "memory": "2Gi", "gpus": 0}


def _broken(name: str, edit) -> dict[str, Any]:
    obj = copy.deepcopy(example(name))
    edit(obj["spec"])
    return obj


BROKEN = [
    (
        "finetune-inline.yaml",
        lambda s: s.update(recipeRef={"name": "r"}),
        "spec: must match exactly one",
    ),
    ("finetune-recipe-ref.yaml", lambda s: s.pop("recipeRef"), "spec: must match exactly one"),
    (
        "finetune-inline.yaml",
        lambda s: s["resources"].update(workers=0),
        "spec.resources.workers: 0 is less than the minimum 1",
    ),
    (
        "finetune-inline.yaml",
        lambda s: s["resources"].update(gpus=1),
        "spec.resources.gpus: unknown field",
    ),
    (
        "finetune-inline.yaml",
        lambda s: s["resources"].update(memory="lots"),
        "spec.resources.memory: 'lots' does not match",
    ),
    (
        "finetune-inline.yaml",
        lambda s: s["storage"].pop("pvc"),
        "spec.storage.pvc: required field is missing",
    ),
    ("finetune-inline.yaml", lambda s: s.pop("image"), "spec.image: required field is missing"),
    (
        "finetune-inline.yaml",
        lambda s: s["storage"].update(mountPath="relative"),
        "spec.storage.mountPath: 'relative' does not match",
    ),
    (
        "modeldeployment-medops.yaml",
        lambda s: s.update(runtime="vllm"),
        'spec.runtime: "vllm" is not one of "medops", "huggingface"',
    ),
    (
        "modeldeployment-medops.yaml",
        lambda s: s.update(canaryTrafficPercent=120),
        "spec.canaryTrafficPercent: 120 is greater than the maximum 100",
    ),
    (
        "modeldeployment-medops.yaml",
        lambda s: s["autoscaling"].update(metric="memory"),
        "spec.autoscaling.metric",
    ),
    (
        "modeldeployment-medops.yaml",
        lambda s: s["autoscaling"].update(target="8"),
        "spec.autoscaling.target: must be integer, got string",
    ),
    ("modeldeployment-medops.yaml", lambda s: s.update(alias="champ ion"), "spec.alias"),
    (
        "modeldeployment-generative.yaml",
        lambda s: s["auth"].update(secretName="other-team-keys"),
        "spec.auth.secretName: unknown field",
    ),
    (
        "modeldeployment-generative.yaml",
        lambda s: s["auth"].update(apiKeys="yes"),
        "spec.auth.apiKeys: must be boolean, got string",
    ),
    (
        "modeldeployment-medops.yaml",
        lambda s: s["mlflow"].pop("trackingUri"),
        "spec.mlflow.trackingUri: required field is missing",
    ),
]


@pytest.mark.parametrize(("name", "edit", "message"), BROKEN)
def test_broken_resources_are_rejected_naming_the_path(name, edit, message, medops_crds):
    with pytest.raises(SchemaError) as caught:
        validate_resource(_broken(name, edit), medops_crds)
    assert any(problem.startswith(message) for problem in caught.value.errors), caught.value


def test_status_is_validated_too(medops_crds):
    obj = example("finetune-inline.yaml")
    obj["status"] = {"phase": "Done", "conditions": [{"type": "Ready", "status": "yes"}]}
    with pytest.raises(SchemaError) as caught:
        validate_resource(obj, medops_crds)
    text = json.dumps(caught.value.errors)
    assert "status.phase" in text and "status.conditions[0].status" in text
