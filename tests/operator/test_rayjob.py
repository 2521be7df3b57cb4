"""FineTune -> RayJob: the stages, the cluster shape, security, and KubeRay's own schema."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys

import pytest
import yaml

from medops.model.gguf_cache import CACHE_ENV
from medops.operator.rayjob import (
    build_rayjob,
    build_recipe_configmap,
    entrypoint,
    recipe_yaml,
)
from medops.operator.schema import validate_resource
from medops.recipe import RecipeError, build_recipe
from medops.registry.tracking import TRACKING_ENV
from tests.operator.conftest import example

RESTRICTED = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def _pods(rayjob):
    cluster = rayjob["spec"]["rayClusterSpec"]
    (workers,) = cluster["workerGroupSpecs"]
    return {
        "head": cluster["headGroupSpec"]["template"]["spec"],
        "worker": workers["template"]["spec"],
        "submitter": rayjob["spec"]["submitterPodTemplate"]["spec"],
    }


def test_rayjob_validates_against_kuberay_crd(finetune, upstream_crds, medops_crds):
    validate_resource(build_rayjob(finetune), upstream_crds)
    gpu = validate_resource(example("finetune-recipe-ref.yaml"), medops_crds)
    gpu["metadata"]["uid"] = "gpu-uid"
    validate_resource(build_rayjob(gpu), upstream_crds)


def _as_the_head_runs_it(entrypoint_text: str) -> str:
    """The command the Ray head executes: KubeRay pastes the entrypoint into the submitter's
    shell script (a real ``sh`` splits it here), then ``ray job submit`` shlex-joins the words."""
    printer = (
        f"{shlex.quote(sys.executable)} -c 'import json, sys; print(json.dumps(sys.argv[1:]))' "
    )
    words = subprocess.run(
        ["sh", "-c", printer + entrypoint_text], capture_output=True, text=True, check=True
    )
    return shlex.join(json.loads(words.stdout))


def _run_stages(finetune, tmp_path, fail: str = "") -> list[list[str]]:
    """Execute the entrypoint with a stand-in ``medops`` that records its arguments."""
    log, bin_dir = tmp_path / "calls.jsonl", tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "medops"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import json, sys\n"
        f"open({str(log)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
        f"sys.exit(3 if {fail!r} and {fail!r} in sys.argv else 0)\n"
    )
    fake.chmod(0o755)
    log.unlink(missing_ok=True)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    command = _as_the_head_runs_it(entrypoint(finetune))
    subprocess.run(["sh", "-c", command], env=env, check=False, timeout=20)
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_entrypoint_runs_the_four_stages_into_the_volume(finetune, tmp_path):
    finetune["spec"]["storage"]["mountPath"] = str(tmp_path / "volume")
    calls = _run_stages(finetune, tmp_path)
    assert [c[c.index("--name") + 1] for c in calls] == ["prepare", "train", "evaluate", "register"]
    run = f"{tmp_path}/volume/condition-demo"
    register = calls[-1]
    assert register[:2] == ["stage", "/etc/medops/recipe.yaml"]
    assert register[register.index("--out") + 1] == f"{run}/register"
    inputs = [register[i + 1] for i, arg in enumerate(register) if arg == "--input"]
    assert inputs == [
        f"prepared={run}/prepare",
        f"trained={run}/train",
        f"evaluated={run}/evaluate",
    ]
    for call in calls:
        assert f"output_dir={run}" in call and "resources.num_workers=2" in call


def test_a_failed_stage_stops_the_run(finetune, tmp_path):
    finetune["spec"]["storage"]["mountPath"] = str(tmp_path / "volume")
    calls = _run_stages(finetune, tmp_path, fail="train")
    assert [c[c.index("--name") + 1] for c in calls] == ["prepare", "train"]


def test_data_a_pipeline_prepared_is_not_prepared_again(finetune, tmp_path):
    finetune["spec"]["storage"]["mountPath"] = str(tmp_path / "volume")
    prepared = tmp_path / "volume" / "condition-demo" / "prepare"
    prepared.mkdir(parents=True)
    (prepared / "manifest.json").write_text("{}")
    calls = _run_stages(finetune, tmp_path)
    assert [c[c.index("--name") + 1] for c in calls] == ["train", "evaluate", "register"]


def test_cluster_shape_follows_the_spec(finetune):
    finetune["spec"]["resources"].update(workers=3, gpusPerWorker=2)
    rayjob = build_rayjob(finetune)
    group = rayjob["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]
    assert group["replicas"] == group["minReplicas"] == group["maxReplicas"] == 3
    pods = _pods(rayjob)
    worker_limits = pods["worker"]["containers"][0]["resources"]["limits"]
    assert worker_limits == {"cpu": "2", "memory": "8Gi", "nvidia.com/gpu": "2"}
    assert "nvidia.com/gpu" not in pods["head"]["containers"][0]["resources"]["limits"]
    assert pods["worker"]["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert "tolerations" not in pods["head"]
    head_params = rayjob["spec"]["rayClusterSpec"]["headGroupSpec"]["rayStartParams"]
    assert head_params["num-cpus"] == "0"  # training tasks go to the workers only
    assert "resources.use_gpu=true resources.gpus_per_worker=2" in entrypoint(finetune)


def test_every_pod_is_restricted_and_mounts_what_it_needs(finetune):
    for role, pod in _pods(build_rayjob(finetune)).items():
        assert pod["securityContext"]["runAsNonRoot"] is True, role
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        (container,) = pod["containers"]
        assert container["securityContext"] == RESTRICTED, role
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        assert "/tmp" in mounts, role
        if role != "submitter":
            assert mounts["/etc/medops"]["readOnly"] is True
            assert "/mnt/medops" in mounts and "/dev/shm" in mounts
            volumes = {v["name"]: v for v in pod["volumes"]}
            assert volumes["data"]["persistentVolumeClaim"] == {"claimName": "medops-runs"}
            assert volumes["recipe"]["configMap"]["name"] == "condition-demo-recipe"


def test_mlflow_uri_from_spec_and_credentials_from_secret(finetune):
    head = _pods(build_rayjob(finetune))["head"]["containers"][0]
    env = {e["name"]: e["value"] for e in head["env"]}
    assert env[TRACKING_ENV] == "http://medops-mlflow.medops-system.svc:5000"
    assert head["envFrom"] == [{"secretRef": {"name": "medops-mlflow-credentials"}}]
    del finetune["spec"]["mlflow"]["secretRef"]
    assert "envFrom" not in _pods(build_rayjob(finetune))["head"]["containers"][0]


def test_every_ray_node_shares_one_model_cache_on_the_volume(finetune):
    """The driver converts a GGUF base once; workers on other nodes must find that copy."""
    pods = _pods(build_rayjob(finetune))
    for role in ("head", "worker"):
        (container,) = pods[role]["containers"]
        env = {e["name"]: e["value"] for e in container["env"]}
        assert env[CACHE_ENV] == "/mnt/medops/.medops-model-cache", role


def test_children_are_owned_by_the_finetune(finetune):
    rayjob = build_rayjob(finetune)
    configmap = build_recipe_configmap(finetune, recipe_yaml(finetune))
    for child in (rayjob, configmap):
        (owner,) = child["metadata"]["ownerReferences"]
        assert owner == {
            "apiVersion": "medops.dev/v1alpha1",
            "kind": "FineTune",
            "name": "condition-demo",
            "uid": "0b6f2c1e-finetune",
            "controller": True,
            "blockOwnerDeletion": True,
        }
        assert child["metadata"]["namespace"] == "medops-runs"
        assert child["metadata"]["labels"]["medops.dev/finetune"] == "condition-demo"


def test_recipe_snapshot_is_the_users_recipe_and_validates(finetune):
    text = build_recipe_configmap(finetune, recipe_yaml(finetune))["data"]["recipe.yaml"]
    assert yaml.safe_load(text) == finetune["spec"]["recipe"]
    assert build_recipe(yaml.safe_load(text)).name == "condition-demo"


def test_referenced_recipe_is_validated_with_the_jobs_overrides(finetune):
    raw = finetune["spec"].pop("recipe")
    finetune["spec"]["recipeRef"] = {"name": "r", "key": "recipe.yaml"}
    assert yaml.safe_load(recipe_yaml(finetune, yaml.safe_dump(raw))) == raw
    raw["train"]["epochz"] = 3
    with pytest.raises(RecipeError, match="train.epochz: unknown key"):
        recipe_yaml(finetune, yaml.safe_dump(raw))
    with pytest.raises(RecipeError, match="top level must be a mapping"):
        recipe_yaml(finetune, "- a list")
    with pytest.raises(RecipeError, match="not valid YAML"):
        recipe_yaml(finetune, "a: [unclosed")


def test_inline_recipe_errors_name_the_key(finetune):
    finetune["spec"]["recipe"]["gate"]["metric"] = "auc"
    with pytest.raises(RecipeError, match="gate.metric"):
        recipe_yaml(finetune)
