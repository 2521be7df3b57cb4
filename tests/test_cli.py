"""`medops pipeline submit/status/logs`: what a user sees, errors as one line with exit 2."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

import medops.launch.pod_logs
from medops.cli import main
from tests.conftest import DEMO_RECIPE
from tests.launch.kfp_standin import RUN_ID, closed_port, kfp_standin

ON_CLUSTER = ["cluster.mlflow_secret=medops-mlflow", "cluster.storage.pvc=medops-data"]


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("medops: "), captured.err
    assert "Traceback" not in captured.err + captured.out
    return lines[0]


def test_submit_prints_the_run(capsys: pytest.CaptureFixture[str]) -> None:
    with kfp_standin() as api:
        code = main(
            [
                "pipeline",
                "submit",
                str(DEMO_RECIPE),
                "--host",
                api.url,
                "--experiment",
                "onc",
                *ON_CLUSTER,
            ]
        )
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["run_id"] == RUN_ID and printed["experiment"] == "onc"
    pipeline_spec = api.requests[-1].body["pipeline_spec"]["pipeline_spec"]
    recipe_json = pipeline_spec["root"]["inputDefinitions"]["parameters"]["recipe_json"]
    assert json.loads(recipe_json["defaultValue"])["cluster"]["mlflow_secret"] == "medops-mlflow"


def test_submit_to_a_closed_port(capsys: pytest.CaptureFixture[str]) -> None:
    url = closed_port()
    code = main(["pipeline", "submit", str(DEMO_RECIPE), "--host", url, *ON_CLUSTER])
    assert code == 2
    assert one_line_error(capsys).startswith(
        f"medops: cannot reach the Kubeflow Pipelines API at {url}"
    )


def test_submit_with_the_token_from_the_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = ["pipeline", "submit", str(DEMO_RECIPE), *ON_CLUSTER]
    with kfp_standin(token="s3cret") as api:
        assert main([*argv, "--host", api.url]) == 2
        assert "refused the credentials (HTTP 401)" in one_line_error(capsys)
        assert main([*argv, "--host", api.url, "--token-env", "KFP_TOKEN"]) == 2
        assert "KFP_TOKEN: that environment variable is not set" in one_line_error(capsys)
        monkeypatch.setenv("KFP_TOKEN", "s3cret")
        assert main([*argv, "--host", api.url, "--token-env", "KFP_TOKEN"]) == 0
    assert "s3cret" not in capsys.readouterr().out


def test_an_invalid_recipe_is_refused_before_any_request(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with kfp_standin() as api:
        code = main(
            ["pipeline", "submit", str(DEMO_RECIPE), "--host", api.url, "cluster.trainng=x"]
        )
    assert code == 2
    assert "cluster.trainng: unknown key" in capsys.readouterr().err
    assert api.requests == []


def test_status(capsys: pytest.CaptureFixture[str]) -> None:
    with kfp_standin() as api:
        main(["pipeline", "submit", str(DEMO_RECIPE), "--host", api.url, *ON_CLUSTER])
        capsys.readouterr()
        assert main(["pipeline", "status", RUN_ID, "--host", api.url]) == 0
        status = json.loads(capsys.readouterr().out)
        assert main(["pipeline", "status", "missing", "--host", api.url]) == 2
        assert "has no run missing" in one_line_error(capsys)
    assert status["state"] == "RUNNING" and status["tasks"]["train"] == "RUNNING"


def test_logs_of_one_step(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []
    train = SimpleNamespace(
        metadata=SimpleNamespace(
            name="ct-train", labels={"medops.dev/stage": "train"}, creation_timestamp=0
        ),
        status=SimpleNamespace(phase="Running"),
    )

    def pods(namespace: str, label_selector: str) -> SimpleNamespace:
        asked.append(f"{namespace} {label_selector}")
        return SimpleNamespace(items=[train])

    core = SimpleNamespace(
        list_namespaced_pod=pods,
        read_namespaced_pod_log=lambda name, namespace, container: f"epoch 1 loss 0.9 ({name})",
    )
    monkeypatch.setattr(medops.launch.pod_logs, "_core_api", lambda: core)
    with kfp_standin() as api:
        main(["pipeline", "submit", str(DEMO_RECIPE), "--host", api.url, *ON_CLUSTER])
        capsys.readouterr()
        argv = ["pipeline", "logs", RUN_ID, "--host", api.url, "--step", "train"]
        assert main([*argv, "--namespace", "team-a"]) == 0
        assert capsys.readouterr().out.splitlines() == [
            "==> train pod ct-train (Running) <==",
            "epoch 1 loss 0.9 (ct-train)",
        ]
        assert main(["pipeline", "logs", "missing", "--host", api.url]) == 2
        assert "has no run missing" in one_line_error(capsys)
    assert asked == [f"team-a pipeline/runid={RUN_ID},medops.dev/stage=train"]


def test_a_user_error_is_one_line_and_verbose_shows_where(
    capsys: pytest.CaptureFixture[str], tmp_path
) -> None:
    missing = tmp_path / "absent.yaml"
    assert main(["validate", str(missing)]) == 2
    assert one_line_error(capsys) == f"medops: recipe {missing} does not exist"
    assert main(["-v", "validate", str(missing)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "RecipeError" in err


def test_a_bug_is_not_dressed_as_a_user_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args: object) -> None:
        raise KeyError("a bug, not the user's input")

    monkeypatch.setattr("medops.cli.load_recipe", broken)
    with pytest.raises(KeyError, match="a bug"):
        main(["validate", str(DEMO_RECIPE)])


def test_audit_without_a_log_says_where_to_point_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MEDOPS_AUDIT_DB", raising=False)
    monkeypatch.delenv("MEDOPS_MLFLOW_TRACKING_URI", raising=False)
    assert main(["audit", "--verify"]) == 2
    assert "set MEDOPS_AUDIT_DB to the audit database's SQLAlchemy URL" in one_line_error(capsys)
