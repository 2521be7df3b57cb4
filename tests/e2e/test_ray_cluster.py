"""Issue 16, item 3: the FineTune's RayJob on a real multi-node Ray cluster, then served.

A head and two worker nodes (each its own raylet, a container from the image) run the
RayJob that ``build_rayjob`` makes, submitted unchanged through the Ray Jobs API with
token auth. The causal-LM LoRA trains with one Ray Train worker per worker node, logging
to MLflow on PostgreSQL; one worker node is killed mid-training and replaced, as KubeRay
recreates a pod, and the run must resume from its last checkpoint, finish and register a
version. A predictor container started as the InferenceService says then serves that
version over KServe v1 and the OpenAI routes, behind API keys. Timings go to
``runs/e2e/ray_cluster.json``.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import yaml
from docker.models.containers import Container
from ray.job_submission import JobStatus, JobSubmissionClient

from medops.operator.inferenceservice import api_keys_secret, build_inferenceservice
from medops.operator.objects import API_KEYS_KEY, RECIPE_DIR, RECIPE_FILE, RUN_AS
from medops.operator.rayjob import build_rayjob, build_recipe_configmap, recipe_yaml, run_dir
from medops.serve.auth import hash_key, new_key
from tests.e2e.conftest import IMAGE
from tests.e2e.ray_cluster import (
    RayCluster,
    configmap_dir,
    defaulted,
    is_loopback,
    mlflow_server,
    run_options,
    secret_dir,
    shared_volume,
    write_json,
)
from tests.paths import ROOT
from tests.samples import sample_reviews
from tests.support.network import LOOPBACK, free_port, wait_http

RESULTS = ROOT / "runs" / "e2e" / "ray_cluster.json"
NAME = "extraction-e2e"  # the FineTune, its RayJob and its run directory
MOUNT = "/mnt/medops"  # spec.storage.mountPath (the CRD default)
STEP = re.compile(r"train: step (\d+)/(\d+) loss ([0-9.]+)")
RESUMED = re.compile(r"train: resumed after step (\d+)/(\d+)")
CHECKPOINT_EVERY = 3
JOB_TIMEOUT_S = 900
VAL_LOSS_TOLERANCE = 0.02  # relative: resumed vs uninterrupted training, same data order
TORCH_STORE = "ray::RayTrainWo"  # ss's 15-character name of a Ray Train worker process


def extraction_recipe() -> dict[str, Any]:
    """recipes/extraction-demo.yaml (real SmolLM2-135M, real reviews) cut to fit 2 cores:
    a sample on the shared volume, one epoch of short packed rows, a few scored rows, and
    a checkpoint every few steps so that a node loss has something to resume from."""
    raw = yaml.safe_load((ROOT / "recipes" / "extraction-demo.yaml").read_text())
    raw["name"] = NAME
    for source in raw["data"]["sources"]:
        source.pop("member")
        source["uri"] = f"{MOUNT}/data/{source['role']}.tsv"
    raw["data"].update(top_k_classes=3, validation_fraction=0.15)
    raw["model"]["max_length"] = 160
    raw["train"].update(epochs=1, batch_size=2, checkpoint_every=CHECKPOINT_EVERY)
    raw["lm"].update(eval_limit=6, max_new_tokens=32, eval_batch_size=6, samples_in_report=3)
    # one Ray Train worker per worker node: each node's num-cpus (1, from the pod's cpu
    # limit) is what one train worker reserves, so Ray cannot pack both onto one node
    raw["resources"].update(cpus_per_worker=1, max_failures=1)
    # the gate is not what this test is about: register whatever the run scores
    raw["gate"].update(min_value=0.0, not_below_baseline=False, also_not_below_baseline=[])
    return raw


def submit(client: JobSubmissionClient, rayjob: dict[str, Any]) -> str:
    """What KubeRay's submitter runs (``ray job submit``): the entrypoint, runtime env and
    entrypoint resources of the RayJob, as they are, under a submission id of its name."""
    spec = rayjob["spec"]
    resources = spec.get("entrypointResources")
    return client.submit_job(
        entrypoint=spec["entrypoint"],
        runtime_env=yaml.safe_load(spec["runtimeEnvYAML"]) if spec.get("runtimeEnvYAML") else None,
        submission_id=f"{rayjob['metadata']['name']}-{secrets.token_hex(3)}",
        entrypoint_num_cpus=spec.get("entrypointNumCpus"),
        entrypoint_num_gpus=spec.get("entrypointNumGpus"),
        entrypoint_resources=json.loads(resources) if resources else None,
    )


def job_logs(client: JobSubmissionClient, job_id: str) -> str:
    try:
        return client.get_job_logs(job_id)
    except Exception:  # the dashboard may be busy; the next poll retries
        return ""


def wait_job(
    client: JobSubmissionClient,
    job_id: str,
    until: Callable[[str, JobStatus], bool],
    timeout: float,
    what: str,
) -> str:
    """Poll the job until ``until(logs, status)``; fail with the log tail if it ends first."""
    deadline = time.monotonic() + timeout
    logs = ""
    while time.monotonic() < deadline:
        status = client.get_job_status(job_id)
        logs = job_logs(client, job_id)
        if until(logs, status):
            return logs
        if status.is_terminal():
            raise AssertionError(f"job {status.value} before {what}:\n{logs[-6000:]}")
        time.sleep(2)
    raise AssertionError(f"no {what} within {timeout}s:\n{logs[-6000:]}")


def succeeded(_logs: str, status: JobStatus) -> bool:
    return status == JobStatus.SUCCEEDED


def steps(logs: str) -> list[int]:
    return [int(m[1]) for m in STEP.finditer(logs)]


def step_losses(logs: str) -> dict[int, float]:
    """Optimizer step -> its loss as rank 0 printed it; a retrained step keeps its last."""
    return {int(m[1]): float(m[3]) for m in STEP.finditer(logs)}


def checkpoint_steps(run: Path) -> list[int]:
    """The optimizer step of each checkpoint Ray Train persisted on the shared volume."""
    found = []
    for position in (run / "train" / "ray").glob("*/checkpoint_*/position.json"):
        try:
            found.append(int(json.loads(position.read_text())["step"]))
        except (OSError, ValueError, KeyError):
            continue  # being written
    return sorted(found)


def committed_checkpoint(run: Path) -> int:
    """The step of the newest checkpoint Ray Train's controller has registered (0: none).

    A worker's checkpoint directory lands on the volume before the controller records it
    in its manager snapshot; only a recorded one is what a restart restores from."""
    newest = 0
    for snapshot in (run / "train" / "ray").glob("*/checkpoint_manager_snapshot.json"):
        try:
            latest = json.loads(snapshot.read_text())["latest_checkpoint_result"]
            position = snapshot.parent / latest["checkpoint_dir_name"] / "position.json"
            newest = max(newest, int(json.loads(position.read_text())["step"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # being written, or nothing registered yet
    return newest


def results(run: Path) -> dict[str, Any]:
    """What the stages left in the run directory: train and evaluate metrics, the decision."""

    def read(stage: str, name: str = "manifest.json") -> dict[str, Any]:
        return dict(json.loads((run / stage / name).read_text()))

    return {
        "train": read("train"),
        "evaluate": read("evaluate"),
        "decision": read("register", "decision.json"),
    }


def host_path(volume: Path, finetune: dict[str, Any]) -> Path:
    """The FineTune's run directory (``run_dir``, a path in the pods) on this host."""
    return volume / run_dir(finetune).removeprefix(MOUNT).lstrip("/")


def e2e_finetune(name: str, tracking_uri: str) -> dict[str, Any]:
    """The FineTune, defaulted as the API server stores it: two 1-CPU worker pods."""
    finetune = defaulted(
        "finetune-inline.yaml",
        image=IMAGE,
        resources={"workers": 2, "gpusPerWorker": 0, "cpu": "1", "memory": "6Gi"},
        storage={"pvc": "medops-runs", "mountPath": MOUNT},
        mlflow={"trackingUri": tracking_uri},
        recipe=extraction_recipe(),
    )
    finetune["metadata"]["name"] = name
    return finetune


def train_worker_nodes(cluster: RayCluster) -> list[str]:
    """The node id of each live Ray Train worker actor (Ray's state API)."""
    return sorted(
        a["node_id"] for a in cluster.state("actors", class_name="RayTrainWorker", state="ALIVE")
    )


def wait_train_workers(cluster: RayCluster, timeout: float) -> list[str]:
    deadline = time.monotonic() + timeout
    nodes: list[str] = []
    while time.monotonic() < deadline:
        nodes = train_worker_nodes(cluster)
        if len(nodes) == 2:
            return nodes
        time.sleep(1)
    raise AssertionError(f"expected 2 live train workers, saw {nodes}")


def predictor_container(
    start_container: Callable[..., Container],
    configmap: dict[str, Any],
    version: str,
    tracking_uri: str,
    work: Path,
) -> tuple[Container, str, str, str]:
    """The KServe predictor of a ModelDeployment pinned to ``version``, as a container:
    the InferenceService's command and args (host and port moved to a loopback port), its
    env, limits and volumes; the API keys Secret holds one key made here."""
    deployment = defaulted(
        "modeldeployment-medops.yaml",
        modelName="condition-extractor",
        image=IMAGE,
        recipeRef={"name": configmap["metadata"]["name"]},
        mlflow={"trackingUri": tracking_uri},
        # 4Gi, not the example's 2Gi: the pod's /tmp (an emptyDir, on disk in a cluster)
        # is a tmpfs here and holds the downloaded version and the converted base (~1 GB)
        resources={"cpu": "1", "memory": "4Gi"},
    )
    deployment["metadata"]["name"] = "extractor"
    isvc = build_inferenceservice(deployment, version, task="causal-lm")
    predictor = isvc["spec"]["predictor"]
    (container,) = predictor["containers"]
    assert container["command"] == ["medops", "serve", f"{RECIPE_DIR}/{RECIPE_FILE}"]
    port = free_port()
    # the pod listens on its pod IP; this host's stand-in for the pod network is 127.0.0.1
    args = [
        {
            "serve.host=0.0.0.0": f"serve.host={LOOPBACK}",
            "serve.port=8080": f"serve.port={port}",
        }.get(arg, arg)
        for arg in container["args"]
    ]
    assert f"serve.host={LOOPBACK}" in args and f"serve.port={port}" in args
    key = new_key()
    secret = api_keys_secret(deployment, "causal-lm")
    assert secret is not None, "a generative version is served with API keys by default"
    volumes = {v["name"]: v for v in predictor["volumes"]}
    sources = {
        "recipe": configmap_dir(work / "predictor-recipe", configmap["data"]),
        "api-keys": secret_dir(
            work / "api-keys",
            {API_KEYS_KEY: f"e2e:{hash_key(key)}\n"},
            volumes["api-keys"]["secret"]["defaultMode"],
            RUN_AS,
        ),
    }
    pod = {
        "securityContext": predictor["securityContext"],
        "containers": [container],
        "volumes": predictor["volumes"],
    }
    started = start_container(
        *args,
        entrypoint=container["command"],
        name=f"predictor-{secrets.token_hex(3)}",
        labels={"medops.dev/e2e": "predictor"},
        **run_options(pod, sources),
    )
    return (
        started,
        f"http://{LOOPBACK}:{port}",
        key,
        isvc["metadata"]["annotations"]["medops.dev/model-version"],
    )


def scenario(
    start_container: Callable[..., Container], tmp_path: Path, figures: dict[str, Any]
) -> None:
    """The whole path, writing its figures into ``figures`` as it goes."""
    started = time.monotonic()
    with mlflow_server(tmp_path / "mlflow") as mlflow:
        figures["mlflow_start_s"] = round(time.monotonic() - started, 1)
        # -- the FineTune, its recipe snapshot and its RayJob, as the operator builds them
        volume = shared_volume(tmp_path / "pvc")
        data = shared_volume(volume / "data")
        sample_reviews("drugsComTrain.tsv", 16, data / "train.tsv")
        sample_reviews("drugsComTest.tsv", 4, data / "test.tsv")
        finetune = e2e_finetune(NAME, mlflow.url)
        configmap = build_recipe_configmap(finetune, recipe_yaml(finetune))
        rayjob = build_rayjob(finetune)
        run = host_path(volume, finetune)
        sources = {"recipe": configmap_dir(tmp_path / "recipe", configmap["data"]), "data": volume}

        # -- the Ray cluster: head + 2 worker pods, token auth, everything on 127.0.0.1
        cluster_started = time.monotonic()
        cluster = RayCluster(rayjob, start_container, sources)
        nodes = cluster.start()
        figures["cluster_start_s"] = round(time.monotonic() - cluster_started, 1)
        assert set(nodes) == {"head", "worker-1", "worker-2"}
        assert len(set(nodes.values())) == 3, "three raylets, three node ids"
        assert cluster.nodes["head"].params["num-cpus"] == "0"  # no Ray tasks on the head
        assert cluster.nodes["worker-1"].params["num-cpus"] == "1"  # the pod's cpu limit
        unauthenticated = httpx.get(f"{cluster.dashboard}/api/jobs/", timeout=10)
        assert unauthenticated.status_code == 401, "Ray token auth must guard the Jobs API"

        # -- the RayJob, submitted unchanged; training spans both worker nodes
        client = JobSubmissionClient(cluster.dashboard, headers=cluster.headers)
        job_id = submit(client, rayjob)
        submitted = time.monotonic()
        logs = wait_job(
            client,
            job_id,
            # a step past the newest checkpoint: the kill loses work the resume must redo
            lambda text, _: (
                committed_checkpoint(run) > 0
                and max(steps(text), default=0) > committed_checkpoint(run)
            ),
            timeout=600,
            what="a training step past a checkpoint",
        )
        figures["kill_after_submit_s"] = round(time.monotonic() - submitted, 1)
        trainers = wait_train_workers(cluster, timeout=30)
        assert trainers == sorted([nodes["worker-1"], nodes["worker-2"]]), (trainers, nodes)
        # every Ray server binds 127.0.0.1; the one socket torch binds to all interfaces is
        # the c10d rendezvous store of Ray Train's rank 0 (TCPStore has no bind address)
        listening = cluster.listeners()
        exposed = [entry for entry in listening if not is_loopback(entry[0])]
        assert listening and all(process == TORCH_STORE for _, _, process in exposed), exposed
        assert len(exposed) <= 1, exposed
        figures["listening_sockets_during_training"] = len(listening)
        figures["listening_beyond_loopback"] = [" ".join(entry) for entry in exposed]

        # -- lose a worker node mid-training; a replacement pod joins, as KubeRay makes one
        logs = job_logs(client, job_id) or logs
        total = int(STEP.search(logs)[2])  # type: ignore[index]
        last_checkpoint, last_step = committed_checkpoint(run), max(steps(logs))
        assert last_checkpoint < total, "killed too late: training already checkpointed its end"
        cluster.nodes["worker-1"].container.kill()
        killed = time.monotonic()
        cluster.start_worker()  # worker-3
        nodes.update(cluster.wait_alive({"worker-3"}, timeout=120))
        figures["replacement_node_alive_s"] = round(time.monotonic() - killed, 1)
        logs = wait_job(
            client, job_id, lambda text, _: bool(RESUMED.search(text)), 300, "a resumed training"
        )
        resumed_from = int(RESUMED.search(logs)[1])  # type: ignore[index]
        trainers = wait_train_workers(cluster, timeout=60)
        assert trainers == sorted([nodes["worker-2"], nodes["worker-3"]]), (trainers, nodes)
        logs = wait_job(
            client,
            job_id,
            lambda text, _: resumed_from + 1 in steps(text.split("resumed after step")[-1]),
            timeout=300,
            what="a training step after the resume",
        )
        figures["recover_s"] = round(time.monotonic() - killed, 1)
        logs = wait_job(client, job_id, succeeded, JOB_TIMEOUT_S, "success")
        figures["job_wall_s"] = round(time.monotonic() - submitted, 1)

        # the run resumed from the newest checkpoint Ray had registered, not from the start
        assert 0 < last_checkpoint <= resumed_from < total, (last_checkpoint, resumed_from)
        after = steps(logs.split("resumed after step")[-1])
        assert after[0] == resumed_from + 1 and after[-1] == total, after
        assert max(checkpoint_steps(run)) == total
        figures.update(
            total_steps=total,
            checkpoint_every=CHECKPOINT_EVERY,
            killed_after_step=last_step,
            last_checkpoint_before_kill=last_checkpoint,
            resumed_from_step=resumed_from,
            steps_retrained=last_step - resumed_from,
        )

        # -- what the run left: metrics, and a version in the PostgreSQL-backed registry
        done = results(run)
        decision, evaluated = done["decision"], done["evaluate"]
        assert done["train"]["extra"]["workers"] == 2
        version = decision["version"]
        with psycopg.connect(
            f"host=127.0.0.1 port=5432 user=postgres dbname={mlflow.database}"
        ) as connection:
            versions = connection.execute("SELECT name, version FROM model_versions").fetchall()
            logged = connection.execute(
                "SELECT DISTINCT step FROM metrics WHERE run_uuid = %s AND key = 'train_loss'",
                (decision["tags"]["mlflow_run_id"],),
            ).fetchall()
        assert ("condition-extractor", int(version)) in versions
        assert {step for (step,) in logged} == set(range(1, total + 1))
        metrics = evaluated["metrics"]
        # the resumed training still taught the base the answer format
        assert metrics["json_validity"] > metrics["baseline_json_validity"]
        figures.update(
            model_version=decision["model_uri"],
            metric={
                "name": "condition_macro_f1",
                "value": metrics["condition_macro_f1"],
                "untuned_base": metrics["baseline_condition_macro_f1"],
                "json_validity": metrics["json_validity"],
                "untuned_base_json_validity": metrics["baseline_json_validity"],
                "scored_test_rows": evaluated["counts"]["test_scored"],
            },
            val_loss=done["train"]["metrics"]["val_loss"],
        )

        # -- the predictor the InferenceService describes serves that version
        serve_started = time.monotonic()
        container, base, key, pinned = predictor_container(
            start_container, configmap, version, mlflow.url, tmp_path
        )
        assert pinned == version
        auth = {"Authorization": f"Bearer {key}"}
        wait_http(
            f"{base}/v1/models/extractor",
            timeout=300,
            headers=auth,
            ready=lambda r: r.status_code == 200 and r.json().get("ready") is True,
            container=container,
        )
        figures["serve_ready_s"] = round(time.monotonic() - serve_started, 1)
        review = json.loads((run / "prepare" / "test.jsonl").read_text().splitlines()[0])["text"]
        keyless = httpx.post(
            f"{base}/v1/models/extractor:predict", json={"instances": [review]}, timeout=30
        )
        assert keyless.status_code == 401, "the generative endpoint must require an API key"
        v1 = httpx.post(
            f"{base}/v1/models/extractor:predict",
            json={"instances": [{"text": review}]},
            headers=auth,
            timeout=120,
        )
        assert v1.status_code == 200, v1.text
        (prediction,) = v1.json()["predictions"]
        assert set(prediction["fields"]) == {"drug", "condition", "sentiment"}
        chat = httpx.post(
            f"{base}/openai/v1/chat/completions",
            json={
                "model": "extractor",
                "messages": [{"role": "user", "content": review}],
                "max_tokens": 24,
            },
            headers=auth,
            timeout=120,
        )
        assert chat.status_code == 200, chat.text
        answer = chat.json()
        assert answer["object"] == "chat.completion" and answer["choices"][0]["message"]["content"]
        figures["v1_prediction_json_valid"] = prediction["json_valid"]
        container.stop(timeout=10)

        # -- the same training uninterrupted, as its own FineTune on the same cluster (its
        # RayJob would get a cluster of its own; the recipe ConfigMap is the same text); it
        # starts from the prepared data, as a FineTune a pipeline hands training to does
        reference = e2e_finetune(f"{NAME}-ref", mlflow.url)
        assert recipe_yaml(reference) == configmap["data"][RECIPE_FILE]
        reference_run = shared_volume(host_path(volume, reference))
        shutil.copytree(run / "prepare", reference_run / "prepare")
        reference_started = time.monotonic()
        reference_id = submit(client, build_rayjob(reference))
        reference_logs = wait_job(client, reference_id, succeeded, JOB_TIMEOUT_S, "success")
        figures["reference_job_wall_s"] = round(time.monotonic() - reference_started, 1)
        assert '"stage": "prepare"' in logs and '"stage": "prepare"' not in reference_logs
        assert not RESUMED.search(reference_logs)
        expected = results(reference_run)
        expected_loss = expected["train"]["metrics"]["val_loss"]
        relative = abs(figures["val_loss"] - expected_loss) / expected_loss
        ours, theirs = step_losses(logs), step_losses(reference_logs)
        assert sorted(ours) == sorted(theirs) == list(range(1, total + 1))
        figures["uninterrupted"] = {
            "val_loss": expected_loss,
            "val_loss_relative_difference": round(relative, 4),
            "tolerance": VAL_LOSS_TOLERANCE,
            "condition_macro_f1": expected["evaluate"]["metrics"]["condition_macro_f1"],
            "json_validity": expected["evaluate"]["metrics"]["json_validity"],
            "identical_losses_before_resume": all(
                ours[s] == theirs[s] for s in range(1, resumed_from + 1)
            ),
            "max_step_loss_difference_after_resume": round(
                max(abs(ours[s] - theirs[s]) for s in range(resumed_from + 1, total + 1)), 4
            ),
        }
        assert relative <= VAL_LOSS_TOLERANCE, figures["uninterrupted"]
        # same data order and seeds: up to the checkpoint the runs are the same computation
        assert figures["uninterrupted"]["identical_losses_before_resume"], (ours, theirs)
        figures["total_s"] = round(time.monotonic() - started, 1)
        figures["nodes"] = {"head": 1, "workers": 2, "worker_pods_started": 3, "train_workers": 2}


@pytest.mark.e2e
def test_finetune_rayjob_on_a_multinode_cluster_survives_a_node_loss_and_serves(
    start_container: Callable[..., Container], tmp_path: Path
) -> None:
    figures: dict[str, Any] = {"image": IMAGE, "passed": False}
    try:
        scenario(start_container, tmp_path, figures)
        figures["passed"] = True
    finally:  # the figures so far, also when a step failed ("passed": false)
        write_json(RESULTS, figures)
    print(
        f"\nray cluster e2e: head + 2 workers up in {figures['cluster_start_s']}s; job "
        f"{figures['job_wall_s']}s; worker-1 killed after step {figures['killed_after_step']}/"
        f"{figures['total_steps']}, resumed from step {figures['resumed_from_step']} "
        f"({figures['recover_s']}s from the kill to the next step); val_loss "
        f"{figures['val_loss']:.4f} vs {figures['uninterrupted']['val_loss']:.4f} "
        f"uninterrupted; condition_macro_f1 {figures['metric']['value']:.3f}; "
        f"{figures['model_version']} served in {figures['serve_ready_s']}s; total "
        f"{figures['total_s']}s -> {RESULTS}"
    )
