"""The compiled IR is what a cluster runs: check its shape, not just that it compiles."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from kfp import compiler

from medops.launch.compile import compile_pipeline
from medops.launch.sources import sources_sha256
from medops.recipe import Recipe, RecipeError, build_recipe
from pipelines.classification import build_pipeline, encode_recipe
from tests.conftest import demo_raw

UPSTREAM = {
    "prepare": set(),
    "train": {"prepare"},
    "evaluate": {"prepare", "train"},
    "register": {"prepare", "train", "evaluate"},
}
CPU, GPU = "registry.example/medops-cpu:1.2.3", "registry.example/medops-gpu:1.2.3"
CLUSTER = [
    f"cluster.images.cpu={CPU}",
    f"cluster.images.gpu={GPU}",
    "cluster.mlflow_secret=medops-mlflow",
    "cluster.storage.pvc=medops-data",
    "cluster.storage.mount_path=/data/medops",
    "cluster.stages.train.cpu_request=6",
    "cluster.stages.train.cpu_limit=8",
    "cluster.retry.max_retries=3",
    "cluster.retry.backoff=1m",
    "resources.num_workers=2",
    "resources.use_gpu=true",
    "resources.gpus_per_worker=4",
]
SECRET_ENV = {
    "MEDOPS_MLFLOW_TRACKING_URI": False,
    "MLFLOW_TRACKING_USERNAME": True,
    "MLFLOW_TRACKING_PASSWORD": True,
    "AWS_ACCESS_KEY_ID": True,
    "AWS_SECRET_ACCESS_KEY": True,
    "MLFLOW_S3_ENDPOINT_URL": True,
}  # env var -> optional in the Secret


def cluster_recipe(tmp_path: Path, *overrides: str) -> Recipe:
    """The demo recipe (its sources are readable here) placed on a GPU cluster."""
    return build_recipe(demo_raw(), [f"output_dir={tmp_path}", *CLUSTER, *overrides])


def compiled(recipe: Recipe, tmp_path: Path) -> dict[str, Any]:
    """The pipeline spec and the Kubernetes platform spec of a cluster compile."""
    path = compile_pipeline(recipe, tmp_path / "nested" / "pipeline.yaml")
    spec, platform = yaml.safe_load_all(path.read_text())
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    return {"spec": spec, "tasks": spec["root"]["dag"]["tasks"], "k8s": executors}


def container(ir: dict[str, Any], task: str) -> dict[str, Any]:
    return ir["spec"]["deploymentSpec"]["executors"][f"exec-{task}"]["container"]


@pytest.fixture
def ir(tmp_path: Path) -> dict[str, Any]:
    return compiled(cluster_recipe(tmp_path), tmp_path)


def test_four_tasks_in_stage_order(ir: dict[str, Any]) -> None:
    assert set(ir["tasks"]) == set(UPSTREAM)
    for name, upstream in UPSTREAM.items():
        assert set(ir["tasks"][name].get("dependentTasks", [])) == upstream, name


def test_each_input_comes_from_the_stage_that_writes_it(ir: dict[str, Any]) -> None:
    producer = {"prepared": "prepare", "trained": "train", "evaluated": "evaluate"}
    for name, upstream in UPSTREAM.items():
        artifacts = ir["tasks"][name]["inputs"].get("artifacts", {})
        wired = {key: spec["taskOutputArtifact"] for key, spec in artifacts.items()}
        expected = {
            key: {"producerTask": task, "outputArtifactKey": key}
            for key, task in producer.items()
            if task in upstream
        }
        assert wired == expected, name


def test_training_runs_in_the_gpu_image_with_every_workers_gpus(ir: dict[str, Any]) -> None:
    train = container(ir, "train")
    assert train["image"] == GPU
    assert train["resources"]["accelerator"]["resourceType"] == "nvidia.com/gpu"
    assert train["resources"]["accelerator"]["resourceCount"] == "8"  # 2 workers x 4 GPUs
    assert ir["k8s"]["exec-train"]["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists"}
    ]
    for name in ("prepare", "evaluate", "register"):
        assert container(ir, name)["image"] == CPU, name
        assert "accelerator" not in container(ir, name)["resources"], name
        assert "tolerations" not in ir["k8s"][f"exec-{name}"], name
    assert all("pip install" not in " ".join(container(ir, n)["command"]) for n in UPSTREAM)


def test_cpu_training_stays_in_the_cpu_image(tmp_path: Path) -> None:
    ir = compiled(cluster_recipe(tmp_path, "resources.use_gpu=false"), tmp_path)
    assert container(ir, "train")["image"] == CPU
    assert "accelerator" not in container(ir, "train")["resources"]


def test_requests_and_limits_per_stage(ir: dict[str, Any], tmp_path: Path) -> None:
    stages = cluster_recipe(tmp_path).cluster.stages
    for name in UPSTREAM:
        resources = container(ir, name)["resources"]
        assert {
            "cpu_request": resources["resourceCpuRequest"],
            "cpu_limit": resources["resourceCpuLimit"],
            "memory_request": resources["resourceMemoryRequest"],
            "memory_limit": resources["resourceMemoryLimit"],
        } == stages[name].model_dump(), name
    assert container(ir, "train")["resources"]["resourceCpuRequest"] == "6"  # the override


def test_every_task_retries_with_backoff(ir: dict[str, Any]) -> None:
    for name in UPSTREAM:
        assert ir["tasks"][name]["retryPolicy"] == {
            "maxRetryCount": 3,
            "backoffDuration": "60s",
            "backoffFactor": 2.0,
            "backoffMaxDuration": "3600s",
        }, name


def test_prepare_is_cached_by_the_sources_content(ir: dict[str, Any], tmp_path: Path) -> None:
    recipe = cluster_recipe(tmp_path)
    parameters = ir["spec"]["root"]["inputDefinitions"]["parameters"]
    assert parameters["sources_sha256"]["defaultValue"] == sources_sha256(recipe)
    assert len(sources_sha256(recipe)) == 64
    assert ir["tasks"]["prepare"]["cachingOptions"]["enableCache"] is True
    assert ir["tasks"]["prepare"]["inputs"]["parameters"]["sources_sha256"] == {
        "componentInputParameter": "sources_sha256"
    }
    assert "run_id" not in ir["tasks"]["prepare"]["inputs"]["parameters"], "would defeat caching"
    for name in ("train", "register"):
        assert not ir["tasks"][name]["cachingOptions"].get("enableCache", False), name


def test_prepare_is_not_cached_when_its_sources_are_unreadable(tmp_path: Path) -> None:
    raw = demo_raw()
    raw["data"]["sources"] = [
        {"uri": "/only/on/the/volume/train.tsv", "role": "train"},
        {"uri": "/only/on/the/volume/test.tsv", "role": "test"},
    ]
    ir = compiled(build_recipe(raw, [f"output_dir={tmp_path}", *CLUSTER]), tmp_path)
    parameters = ir["spec"]["root"]["inputDefinitions"]["parameters"]
    assert parameters["sources_sha256"]["defaultValue"] == ""
    assert not ir["tasks"]["prepare"]["cachingOptions"].get("enableCache", False)
    # not cached, so it writes a directory of its own run
    assert ir["tasks"]["prepare"]["inputs"]["parameters"]["run_id"] == {
        "runtimeValue": {"constant": "{{$.pipeline_job_uuid}}"}
    }


def test_mlflow_credentials_come_from_the_secret(ir: dict[str, Any]) -> None:
    for name in ("train", "register"):
        env = {
            item["envVar"]: (block["secretName"], item["secretKey"], block["optional"])
            for block in ir["k8s"][f"exec-{name}"]["secretAsEnv"]
            for item in block["keyToEnv"]
        }
        assert env == {var: ("medops-mlflow", var, opt) for var, opt in SECRET_ENV.items()}
    for name in ("prepare", "evaluate"):  # they never talk to MLflow
        assert "secretAsEnv" not in ir["k8s"][f"exec-{name}"], name


def test_a_tracking_uri_in_the_recipe_is_not_read_from_the_secret(tmp_path: Path) -> None:
    recipe = cluster_recipe(tmp_path, "registry.tracking_uri=http://mlflow.medops:5000")
    ir = compiled(recipe, tmp_path)
    env = {
        item["envVar"]
        for block in ir["k8s"]["exec-train"]["secretAsEnv"]
        for item in block["keyToEnv"]
    }
    assert env == {var for var, optional in SECRET_ENV.items() if optional}


def test_stage_directories_go_to_the_volume(ir: dict[str, Any]) -> None:
    for name in UPSTREAM:
        assert ir["k8s"][f"exec-{name}"]["pvcMount"][0]["constant"] == "medops-data"
        assert ir["k8s"][f"exec-{name}"]["pvcMount"][0]["mountPath"] == "/data/medops"
        assert ir["k8s"][f"exec-{name}"]["podMetadata"]["labels"] == {"medops.dev/stage": name}
        parameters = ir["tasks"][name]["inputs"]["parameters"]
        assert parameters["storage_root"] == {"runtimeValue": {"constant": "/data/medops"}}
        if name != "prepare":
            assert parameters["run_id"] == {"runtimeValue": {"constant": "{{$.pipeline_job_uuid}}"}}


def test_without_a_volume_directories_travel_as_artifacts(tmp_path: Path) -> None:
    recipe = build_recipe(
        demo_raw(), [f"output_dir={tmp_path}", "cluster.mlflow_secret=medops-mlflow"]
    )
    ir = compiled(recipe, tmp_path)
    for name in UPSTREAM:
        assert "pvcMount" not in ir["k8s"][f"exec-{name}"], name
        assert {"storage_root", "run_id"}.isdisjoint(ir["tasks"][name]["inputs"]["parameters"])


def test_finetune_hands_train_evaluate_register_to_the_operator(tmp_path: Path) -> None:
    ir = compiled(cluster_recipe(tmp_path, "cluster.training=finetune"), tmp_path)
    assert set(ir["tasks"]) == {"prepare", "finetune"}
    assert ir["tasks"]["finetune"]["dependentTasks"] == ["prepare"]
    assert not ir["tasks"]["finetune"]["cachingOptions"].get("enableCache", False)
    # the operator reads prepared data from the FineTune's own run directory
    assert not ir["tasks"]["prepare"]["cachingOptions"].get("enableCache", False)
    assert ir["tasks"]["prepare"]["inputs"]["parameters"]["run_id"] == {
        "runtimeValue": {"constant": "{{$.pipeline_job_uuid}}"}
    }
    finetune = container(ir, "finetune")
    assert finetune["image"] == CPU, "the hand-off only waits; the FineTune's pods get the GPUs"
    assert "accelerator" not in finetune["resources"]
    assert finetune["resources"]["resourceMemoryLimit"] == "512Mi"
    assert [
        (block["optional"], [item["envVar"] for item in block["keyToEnv"]])
        for block in ir["k8s"]["exec-finetune"]["secretAsEnv"]
    ] == [(False, ["MEDOPS_MLFLOW_TRACKING_URI"])], "the tracking URI only, no credentials"
    selectors = ir["spec"]["root"]["dag"]["outputs"]["artifacts"]
    assert {
        name: s["artifactSelectors"][0]["producerSubtask"] for name, s in selectors.items()
    } == {
        "prepared": "prepare",
        "trained": "finetune",
        "evaluated": "finetune",
        "registered": "finetune",
    }


def test_recipe_is_bound_as_the_default(ir: dict[str, Any], tmp_path: Path) -> None:
    recipe = cluster_recipe(tmp_path)
    parameter = ir["spec"]["root"]["inputDefinitions"]["parameters"]["recipe_json"]
    assert parameter["defaultValue"] == encode_recipe(recipe)
    assert build_recipe(json.loads(parameter["defaultValue"])) == recipe
    assert ir["spec"]["pipelineInfo"]["name"] == recipe.name
    for name in UPSTREAM:
        assert ir["tasks"][name]["inputs"]["parameters"]["recipe_json"] == {
            "componentInputParameter": "recipe_json"
        }


def test_every_stage_directory_is_a_pipeline_output(ir: dict[str, Any]) -> None:
    selectors = ir["spec"]["root"]["dag"]["outputs"]["artifacts"]
    assert {
        name: spec["artifactSelectors"][0]["producerSubtask"] for name, spec in selectors.items()
    } == {
        "prepared": "prepare",
        "trained": "train",
        "evaluated": "evaluate",
        "registered": "register",
    }


def test_a_cluster_compile_needs_a_shared_mlflow(tmp_path: Path) -> None:
    recipe = build_recipe(demo_raw(), [f"output_dir={tmp_path}"])
    with pytest.raises(RecipeError, match="cluster.mlflow_secret .* or registry.tracking_uri"):
        compile_pipeline(recipe, tmp_path / "pipeline.yaml")
    assert not (tmp_path / "pipeline.yaml").exists()


def test_the_embedded_pipeline_has_no_cluster_placement(tmp_path: Path) -> None:
    """kfp.local honours retry policies and mounts nothing: embedded runs get neither."""
    path = tmp_path / "embedded.yaml"
    compiler.Compiler().compile(build_pipeline(cluster_recipe(tmp_path)), package_path=str(path))
    documents = list(yaml.safe_load_all(path.read_text()))
    assert len(documents) == 1, "no Kubernetes platform spec"
    tasks = documents[0]["root"]["dag"]["tasks"]
    assert set(tasks) == set(UPSTREAM), "training: local in-process even if the recipe says GPU"
    for name, task in tasks.items():
        assert "retryPolicy" not in task, name
        assert {"storage_root", "run_id"}.isdisjoint(task["inputs"]["parameters"]), name


def test_the_deid_key_secret_reaches_prepare_only(tmp_path: Path) -> None:
    recipe = build_recipe(
        demo_raw(),
        [
            f"output_dir={tmp_path}",
            "cluster.mlflow_secret=medops-mlflow",
            "cluster.deid_key_secret=medops-deid-key",
        ],
    )
    ir = compiled(recipe, tmp_path)
    blocks = ir["k8s"]["exec-prepare"]["secretAsEnv"]
    assert [(b["secretName"], [k["envVar"] for k in b["keyToEnv"]]) for b in blocks] == [
        ("medops-deid-key", ["MEDOPS_DEID_KEY"])
    ]
    for name in ("train", "evaluate", "register"):
        names = [b["secretName"] for b in ir["k8s"].get(f"exec-{name}", {}).get("secretAsEnv", [])]
        assert "medops-deid-key" not in names, name
