"""The training hand-off to the operator, against an in-memory CustomObjectsApi stand-in."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from kfp import dsl
from kubernetes.client.exceptions import ApiException

from medops.launch.errors import ClusterError
from medops.launch.finetune import (
    GROUP,
    PLURAL,
    VERSION,
    FineTuneFailed,
    create_or_reuse,
    failure_reason,
    finetune_resource,
    hand_off,
    wait_for,
)
from medops.launch.kfp_task import LOCATION
from medops.manifest import Manifest, write_manifest
from medops.recipe import Recipe, build_recipe
from pipelines.classification import encode_recipe

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "manifests" / "crds" / "medops.dev_finetunes.yaml"
RUN_ID = "3f2a9c1e-77b0-4d2e-9a4f-0c1d2e3f4a5b"
NAME = "launch-test-3f2a9c1e"


class FakeCustomObjects:
    """Stores what is created; each get applies the next scripted status (then ``on_get``)."""

    def __init__(self, statuses: list[dict[str, Any] | None] = (), create_error: int = 0) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.statuses = list(statuses)
        self.create_error = create_error
        self.creates = 0
        self.on_get = None

    def create_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        assert (group, version, plural) == (GROUP, VERSION, PLURAL)
        self.creates += 1
        key = (namespace, body["metadata"]["name"])
        if self.create_error or key in self.objects:
            raise ApiException(status=self.create_error or 409, reason="refused")
        self.objects[key] = copy.deepcopy(body)
        return copy.deepcopy(body)

    def get_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, name: str
    ) -> dict[str, Any]:
        assert (group, version, plural) == (GROUP, VERSION, PLURAL)
        resource = self.objects[(namespace, name)]
        if self.statuses:
            status = self.statuses.pop(0)
            resource.pop("status", None) if status is None else resource.update(status=status)
        if self.on_get:
            self.on_get(resource)
        return copy.deepcopy(resource)


def on_cluster(recipe: Recipe, mount_path: str = "/mnt/medops") -> Recipe:
    """``recipe`` on 4 workers x 2 GPUs, handing training to a FineTune in team-a."""
    return build_recipe(
        {
            **recipe.to_dict(),
            "resources": {"num_workers": 4, "use_gpu": True, "gpus_per_worker": 2},
            "cluster": {
                "training": "finetune",
                "mlflow_secret": "medops-mlflow",
                "storage": {"pvc": "medops-data", "mount_path": mount_path},
                "images": {"gpu": "registry.example/medops-gpu:1.2.3"},
                "finetune": {"namespace": "team-a", "worker_memory": "64Gi", "poll_seconds": 7},
            },
        }
    )


@pytest.fixture
def placed(recipe: Recipe) -> Recipe:
    return on_cluster(recipe)


def test_the_resource_matches_the_crd_and_the_recipe(placed: Recipe) -> None:
    body = finetune_resource(placed, NAME, "http://mlflow.medops:5000")
    crd = yaml.safe_load(CRD.read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    jsonschema.validate(body, schema)
    assert (crd["spec"]["group"], crd["spec"]["names"]["plural"]) == (GROUP, PLURAL)
    assert body["apiVersion"] == f"{GROUP}/{VERSION}" and body["metadata"]["name"] == NAME
    spec = body["spec"]
    assert build_recipe(spec["recipe"]) == placed
    assert spec["image"] == "registry.example/medops-gpu:1.2.3"
    assert spec["resources"] == {"workers": 4, "gpusPerWorker": 2, "cpu": "1", "memory": "64Gi"}
    assert spec["storage"] == {"pvc": "medops-data", "mountPath": "/mnt/medops"}
    assert spec["mlflow"] == {
        "trackingUri": "http://mlflow.medops:5000",
        "secretRef": "medops-mlflow",
    }
    broken = copy.deepcopy(body)
    del broken["spec"]["storage"]
    with pytest.raises(jsonschema.ValidationError, match="storage"):
        jsonschema.validate(broken, schema)


def test_waits_until_succeeded(placed: Recipe) -> None:
    api = FakeCustomObjects(
        [
            None,
            {"phase": "Pending"},
            {"phase": "Running"},
            {"phase": "Succeeded", "mlflowRunId": "r1"},
        ]
    )
    create_or_reuse(api, "team-a", finetune_resource(placed, NAME, "http://m"))
    sleeps: list[float] = []
    status = wait_for(api, "team-a", NAME, 7, 3600, sleep=sleeps.append, clock=lambda: 0.0)
    assert status == {"phase": "Succeeded", "mlflowRunId": "r1"}
    assert sleeps == [7, 7, 7]


def test_a_failure_is_raised_with_its_message_and_conditions(placed: Recipe) -> None:
    failed = {
        "phase": "Failed",
        "message": "RayJob launch-test-3f2a9c1e failed",
        "conditions": [
            {"type": "Prerequisites", "status": "True", "reason": "Found"},
            {
                "type": "Ready",
                "status": "False",
                "reason": "RayJobFailed",
                "message": "OOMKilled\n  137",
            },
        ],
    }
    api = FakeCustomObjects([{"phase": "Running"}, failed])
    create_or_reuse(api, "team-a", finetune_resource(placed, NAME, "http://m"))
    with pytest.raises(FineTuneFailed) as caught:
        wait_for(api, "team-a", NAME, 1, 3600, sleep=lambda _: None, clock=lambda: 0.0)
    assert str(caught.value) == (
        f"FineTune team-a/{NAME} failed: RayJob launch-test-3f2a9c1e failed; "
        "Ready: RayJobFailed OOMKilled 137"
    )
    assert failure_reason({"phase": "Failed"}) == "no message in its status"


def test_gives_up_after_the_timeout(placed: Recipe) -> None:
    api = FakeCustomObjects()
    create_or_reuse(api, "team-a", finetune_resource(placed, NAME, "http://m"))
    ticks = iter(range(0, 1000, 30))
    with pytest.raises(FineTuneFailed, match="still without a status after 90 s; is the medops"):
        wait_for(api, "team-a", NAME, 30, 90, sleep=lambda _: None, clock=lambda: next(ticks))


def test_a_retried_task_reuses_its_finetune(placed: Recipe) -> None:
    api = FakeCustomObjects()
    body = finetune_resource(placed, NAME, "http://m")
    create_or_reuse(api, "team-a", body)
    again = create_or_reuse(api, "team-a", body)
    assert api.creates == 2 and len(api.objects) == 1
    assert again["spec"] == body["spec"]
    other = finetune_resource(build_recipe({**placed.to_dict(), "seed": 99}), NAME, "http://m")
    with pytest.raises(ClusterError, match="already exists for recipe hash"):
        create_or_reuse(api, "team-a", other)


@pytest.mark.parametrize(
    ("status", "message"),
    [(404, "CRD .*finetunes.medops.dev.* is not installed"), (403, "may not create")],
)
def test_refusals_are_explained(placed: Recipe, status: int, message: str) -> None:
    api = FakeCustomObjects(create_error=status)
    with pytest.raises(ClusterError, match=message):
        create_or_reuse(api, "team-a", finetune_resource(placed, NAME, "http://m"))


def _operator_writes_stages(volume: Path) -> Any:
    """What the operator does before it reports Succeeded: a directory per stage."""

    def on_get(resource: dict[str, Any]) -> None:
        if resource.get("status", {}).get("phase") != "Succeeded":
            return
        run_dir = volume / resource["metadata"]["name"]
        assert (run_dir / "prepare" / "manifest.json").is_file(), "prepared data is visible"
        for stage in ("train", "evaluate", "register"):
            manifest = Manifest(stage=stage, recipe_hash="h")
            manifest.metrics["macro_f1"] = 0.8
            write_manifest(manifest, run_dir / stage)

    return on_get


def test_hand_off_publishes_what_the_operator_wrote(
    recipe: Recipe, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    volume = tmp_path / "volume"
    placed = on_cluster(recipe, str(volume))
    prepared_dir = volume / NAME / "prepare"  # where the pipeline's prepare wrote
    write_manifest(Manifest(stage="prepare", recipe_hash="h"), prepared_dir)
    prepared = dsl.Artifact(uri=str(tmp_path / "kfp" / "prepared"))
    prepared.metadata[LOCATION] = str(prepared_dir)
    outputs = {
        stage: dsl.Artifact(uri=str(tmp_path / "kfp" / stage))
        for stage in ("train", "evaluate", "register")
    }
    monkeypatch.setenv("MEDOPS_MLFLOW_TRACKING_URI", "http://mlflow.from-secret:5000")
    api = FakeCustomObjects([{"phase": "Running"}, {"phase": "Succeeded"}])
    api.on_get = _operator_writes_stages(volume)
    sleeps: list[float] = []

    status = hand_off(
        encode_recipe(placed), prepared, outputs, str(volume), RUN_ID, api, sleeps.append
    )

    assert status == {"phase": "Succeeded"}
    assert sleeps == [7]
    created = api.objects[("team-a", NAME)]
    assert created["spec"]["mlflow"]["trackingUri"] == "http://mlflow.from-secret:5000"
    for stage, artifact in outputs.items():
        assert artifact.metadata[LOCATION] == str(volume / NAME / stage)
        assert artifact.metadata["metrics"] == {"macro_f1": 0.8}
        copied = json.loads((Path(artifact.path) / "manifest.json").read_text())
        assert copied["stage"] == stage

    # the KFP task is retried after it lost its pod: no second training
    api.statuses = [{"phase": "Succeeded"}]
    hand_off(encode_recipe(placed), prepared, outputs, str(volume), RUN_ID, api, sleeps.append)
    assert api.creates == 2 and len(api.objects) == 1


def test_hand_off_refuses_prepared_data_the_operator_cannot_see(
    placed: Recipe, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDOPS_MLFLOW_TRACKING_URI", "http://mlflow:5000")
    cached = dsl.Artifact(uri=str(tmp_path / "prepared"))
    cached.metadata[LOCATION] = str(tmp_path / "prepared" / "launch-test-0123")
    api = FakeCustomObjects()
    with pytest.raises(ClusterError, match="was prepare taken from the cache"):
        hand_off(encode_recipe(placed), cached, {}, str(tmp_path), RUN_ID, api=api)
    assert api.creates == 0


def test_hand_off_needs_a_tracking_uri(
    placed: Recipe, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MEDOPS_MLFLOW_TRACKING_URI", raising=False)
    api = FakeCustomObjects()
    prepared = dsl.Artifact(uri=str(tmp_path / "prepared"))
    with pytest.raises(ClusterError, match="needs an MLflow tracking URI"):
        hand_off(encode_recipe(placed), prepared, {}, str(tmp_path), RUN_ID, api=api)
    assert api.creates == 0
