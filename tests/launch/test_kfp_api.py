"""Submitting and reading runs through kfp.Client, against a stand-in KFP API on 127.0.0.1."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from medops.launch.compile import compile_pipeline
from medops.launch.errors import ClusterError
from medops.launch.kfp_api import REACH_TIMEOUT_SECONDS, run_status, submit
from medops.recipe import Recipe, RecipeError, build_recipe
from tests.conftest import demo_raw
from tests.launch.kfp_standin import RUN_ID, TASKS, closed_port, kfp_standin

HEALTHZ = "GET /apis/v2beta1/healthz"


@pytest.fixture
def on_cluster(tmp_path: Path) -> Recipe:
    return build_recipe(
        demo_raw(),
        [
            f"output_dir={tmp_path}",
            "cluster.mlflow_secret=medops-mlflow",
            "cluster.storage.pvc=medops-data",
        ],
    )


def test_submit_sends_the_compiled_pipeline(on_cluster: Recipe, tmp_path: Path) -> None:
    with kfp_standin() as api:
        result = submit(on_cluster, api.url, experiment="oncology")

    assert api.paths() == [
        HEALTHZ,  # medops' one-shot reachability check
        HEALTHZ,  # kfp.Client asks whether the install is multi-user
        "GET /apis/v2beta1/experiments",
        "POST /apis/v2beta1/experiments",
        "POST /apis/v2beta1/runs",
    ]
    listed, created, run = api.requests[2:]
    assert "oncology" in listed.query["filter"][0]
    assert created.body["display_name"] == "oncology"
    spec, platform = yaml.safe_load_all(
        compile_pipeline(on_cluster, tmp_path / "expected.yaml").read_text()
    )
    assert run.body["pipeline_spec"] == {"pipeline_spec": spec, "platform_spec": platform}
    assert run.body["experiment_id"] == "exp-1"
    assert run.body["runtime_config"] == {"parameters": {}}, "the recipe is the default"
    assert run.body["display_name"] == result["run_name"]
    assert result["run_name"].startswith(f"condition-demo-{on_cluster.content_hash()[:8]}-")
    assert result == {
        "run_id": RUN_ID,
        "run_name": result["run_name"],
        "experiment": "oncology",
        "url": f"{api.url}/#/runs/details/{RUN_ID}",
    }


def test_the_experiment_defaults_to_the_recipes(on_cluster: Recipe) -> None:
    with kfp_standin() as api:
        assert submit(on_cluster, api.url)["experiment"] == "medops"
    assert api.requests[3].body["display_name"] == on_cluster.registry.experiment


def test_a_closed_port_fails_fast_and_clearly(on_cluster: Recipe) -> None:
    url = closed_port()
    started = time.monotonic()
    with pytest.raises(ClusterError, match=f"cannot reach the Kubeflow Pipelines API at {url}"):
        submit(on_cluster, url)
    assert time.monotonic() - started < REACH_TIMEOUT_SECONDS, "no retry loop"


def test_a_refused_token_is_named_and_not_retried(on_cluster: Recipe) -> None:
    with (
        kfp_standin(token="right") as api,
        pytest.raises(ClusterError, match=r"refused the credentials \(HTTP 401\).*--token-env"),
    ):
        submit(on_cluster, api.url, token="wrong")
    assert api.paths() == [HEALTHZ]


def test_the_token_goes_with_every_request(on_cluster: Recipe) -> None:
    with kfp_standin(token="right") as api:
        submit(on_cluster, api.url, token="right")
    assert len(api.requests) == 5
    assert {request.authorization for request in api.requests} == {"Bearer right"}


def test_a_login_redirect_means_no_credentials(on_cluster: Recipe) -> None:
    with kfp_standin(healthz_status=302) as api, pytest.raises(ClusterError, match="HTTP 302"):
        submit(on_cluster, api.url)
    assert api.paths() == [HEALTHZ], "the redirect is not followed"


def test_a_host_that_is_not_the_kfp_api_is_named(on_cluster: Recipe) -> None:
    with (
        kfp_standin(healthz_status=404) as api,
        pytest.raises(ClusterError, match="KFP|Pipelines API"),
    ):
        submit(on_cluster, api.url)


def test_an_invalid_recipe_sends_nothing(tmp_path: Path) -> None:
    no_mlflow = build_recipe(demo_raw(), [f"output_dir={tmp_path}"])
    with kfp_standin() as api, pytest.raises(RecipeError, match="shared MLflow"):
        submit(no_mlflow, api.url)
    assert api.requests == []


def test_status_reports_the_run_and_its_tasks(on_cluster: Recipe) -> None:
    with kfp_standin() as api:
        submit(on_cluster, api.url)
        status = run_status(RUN_ID, api.url)
        with pytest.raises(ClusterError, match="has no run nope"):
            run_status("nope", api.url)
    assert status["run_id"] == RUN_ID and status["state"] == "RUNNING"
    assert status["tasks"] == {task["display_name"]: task["state"] for task in TASKS}
