"""Objects planted under the names the operator derives (issue 22, finding 4): a recipe
ConfigMap holding another recipe, or an InferenceService serving another image, are never
adopted or overwritten."""

from __future__ import annotations

import asyncio

import pytest
import yaml

from medops.operator.reconcile import reconcile_deployment, reconcile_finetune
from medops.operator.schema import validate_resource
from tests.operator.conftest import example
from tests.operator.test_kopf_kmock import ISVCS, RAYJOBS, cluster, create, stored

__all__ = ["cluster"]
PLANTED = {"name": "planted", "task": "classification", "data": {"sources": []}}


def _condition(status: dict, kind: str) -> dict:
    return next(c for c in status["conditions"] if c["type"] == kind)


@pytest.mark.asyncio
async def test_a_planted_recipe_configmap_is_not_adopted(cluster, finetune):
    name = finetune["metadata"]["name"]
    planted = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{name}-recipe", "namespace": finetune["metadata"]["namespace"]},
        "data": {"recipe.yaml": yaml.safe_dump(PLANTED)},
    }
    await create(cluster, "v1/configmaps", planted)
    status = await asyncio.to_thread(reconcile_finetune, finetune)
    refused = _condition(status, "Reconciled")
    assert (refused["status"], refused["reason"]) == ("False", "ForeignObject")
    assert "belongs to something else" in refused["message"] and status["phase"] == "Failed"
    assert not [key for key in cluster.objects if key[0] == RAYJOBS]


@pytest.mark.asyncio
async def test_the_recipe_snapshot_is_immutable(cluster, finetune):
    await asyncio.to_thread(reconcile_finetune, finetune)
    name = finetune["metadata"]["name"]
    assert stored(cluster, "v1/configmaps", f"{name}-recipe")["immutable"] is True


@pytest.mark.asyncio
async def test_a_foreign_inferenceservice_is_not_overwritten(cluster, mlflow_registry, medops_crds):
    uri, _ = mlflow_registry  # condition-classifier@champion is version 1
    deployment = validate_resource(example("modeldeployment-medops.yaml"), medops_crds)
    deployment["metadata"]["uid"] = "our-uid"
    deployment["spec"]["mlflow"]["trackingUri"] = uri
    theirs = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": deployment["metadata"]["name"],
            "namespace": deployment["metadata"]["namespace"],
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "x", "uid": "their-uid",
                 "controller": True}
            ],
        },
        "spec": {"predictor": {"containers": [{"name": "c", "image": "their/model:1"}]}},
    }  # fmt: skip
    await create(cluster, ISVCS, theirs)
    status = await asyncio.to_thread(reconcile_deployment, deployment)
    assert _condition(status, "Ready")["reason"] == "ForeignObject"
    kept = stored(cluster, ISVCS, deployment["metadata"]["name"])
    assert kept["spec"] == theirs["spec"], "their InferenceService was changed"
