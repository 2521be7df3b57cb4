"""Human approval on the real register stage and MLflow registry: the alias moves only for a
version the gate passed and someone approved, and the audit log says who, when and why."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import mlflow
import pytest

from medops.cli import main
from medops.recipe import Recipe, RecipeError
from medops.registry.approval import AUTO_ACTOR, settle_registered
from medops.registry.audit import AuditLog, audit_url
from medops.registry.gate import Decision
from medops.registry.tracking import client, tracking_uri
from tests.registry.conftest import Register, with_overrides

MODEL = "condition-classifier"
PASSING = ("gate.min_value=0.0", "gate.not_below_baseline=false")


def _champion(recipe: Recipe) -> str | None:
    try:
        return str(client(recipe).get_model_version_by_alias(MODEL, "champion").version)
    except mlflow.exceptions.MlflowException:
        return None


def _log(recipe: Recipe) -> AuditLog:
    return AuditLog(audit_url(tracking_uri(recipe)), create=False)


def _error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("medops: "), err
    return err[0]


def test_required_approval_leaves_the_alias_until_approve_moves_it(
    tiny_recipe: Recipe,
    register: Register,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    recipe = with_overrides(tiny_recipe, *PASSING, "registry.approval=required")
    caplog.set_level("INFO", logger="medops.registry.stage")
    run = register(recipe)
    extra, decision = run["manifest"]["extra"], run["decision"]
    assert decision["passed"] and decision["alias"] is None and extra["alias"] is None
    assert extra["approval"] == "pending" and extra["approval_summary"].startswith("pending")
    model_uri = extra["model_uri"]
    assert f"medops approve {model_uri} --reason" in caplog.text
    assert _champion(recipe) is None
    version = client(recipe).get_model_version(MODEL, extra["version"])
    assert version.tags["approval"] == "pending" and version.tags["gate"] == "passed"
    [gate] = _log(recipe).entries()
    assert (gate.action, gate.subject, gate.actor) == ("gate", model_uri, "medops (register stage)")
    assert gate.details["passed"] is True
    assert gate.details["mlflow_run_id"] == extra["mlflow_run_id"]
    assert version.tags["gate_audit_hash"] == gate.hash

    uri = tracking_uri(recipe)
    capsys.readouterr()
    argv = ["approve", model_uri, "--reason", "error analysis reviewed", "--tracking-uri", uri]
    assert main([*argv, "--actor", "dr.lee"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["approval"] == "approved" and printed["previous_version"] is None
    assert _champion(recipe) == extra["version"]
    tags = client(recipe).get_model_version(MODEL, extra["version"]).tags
    entries = _log(recipe).entries()
    assert [e.action for e in entries] == ["gate", "approve", "alias"]
    approve = entries[1]
    assert (approve.actor, approve.reason) == ("dr.lee", "error analysis reviewed")
    assert approve.details["mlflow_run_id"] == extra["mlflow_run_id"]
    assert tags["approval"] == "approved" and tags["approved_by"] == "dr.lee"
    assert tags["approved_at"] == approve.at and tags["approval_audit_hash"] == approve.hash
    assert entries[2].details["alias"] == "champion"

    assert main(["audit", "--verify", "--tracking-uri", uri]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4 and " approve " in lines[1] and "dr.lee" in lines[1]
    assert lines[-1].startswith("audit log intact: 3 entries, 2 registry hashes found in it")


def test_approve_refuses_a_version_the_gate_refused(
    tiny_recipe: Recipe, register: Register, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = with_overrides(tiny_recipe, "registry.approval=required")
    extra = register(recipe, macro_f1=0.5)["manifest"]["extra"]
    assert not extra["gate_passed"] and extra["approval"] == "not_eligible"
    uri = tracking_uri(recipe)
    capsys.readouterr()  # the stages' progress bars
    code = main(["approve", extra["model_uri"], "--reason", "ship it", "--tracking-uri", uri])
    assert code == 2
    message = _error(capsys)
    assert f"{extra['model_uri']} cannot be approved: the gate refused it (macro_f1 0.5000" in (
        message
    )
    assert _champion(recipe) is None
    assert [e.action for e in _log(recipe).entries()] == ["gate"], "nothing recorded"

    # a rejection needs no passed gate: it is recorded and tagged
    code = main(["reject", extra["model_uri"], "--reason", "too weak", "--tracking-uri", uri])
    assert code == 0 and json.loads(capsys.readouterr().out)["approval"] == "rejected"
    tags = client(recipe).get_model_version(MODEL, extra["version"]).tags
    assert tags["approval"] == "rejected" and tags["approved_by"]  # the OS user
    assert [e.action for e in _log(recipe).entries()] == ["gate", "reject"]


def test_auto_approval_records_who_and_why(tiny_recipe: Recipe, register: Register) -> None:
    assert tiny_recipe.registry.approval == "auto"  # what the demo recipes ask
    recipe = with_overrides(tiny_recipe, *PASSING)
    extra = register(recipe)["manifest"]["extra"]
    assert extra["approval"] == "approved" and extra["approval_summary"] == "auto-approved (demo)"
    assert extra["approved_by"] == AUTO_ACTOR == "medops (auto: recipe registry.approval=auto)"
    assert _champion(recipe) == extra["version"]
    gate, approve, alias = _log(recipe).entries()
    assert (approve.action, approve.actor) == ("approve", AUTO_ACTOR)
    assert "registry.approval is auto" in approve.reason and "no person reviewed" in approve.reason
    assert (alias.action, alias.details["alias"], alias.details["version"]) == (
        "alias",
        "champion",
        extra["version"],
    )
    assert extra["audit"] == {"gate": gate.hash, "approve": approve.hash, "alias": alias.hash}
    tags = client(recipe).get_model_version(MODEL, extra["version"]).tags
    assert tags["approved_by"] == AUTO_ACTOR and tags["approval_audit_hash"] == approve.hash


def test_a_broken_chain_fails_verify_naming_the_entry(
    tiny_recipe: Recipe, register: Register, capsys: pytest.CaptureFixture[str]
) -> None:
    register(with_overrides(tiny_recipe, *PASSING))
    log = _log(tiny_recipe)
    with log.engine.begin() as connection:
        connection.exec_driver_sql("DROP TRIGGER audit_log_no_update")
        connection.exec_driver_sql("UPDATE audit_log SET actor = 'dr.nobody' WHERE seq = 2")
    db = audit_url(tracking_uri(tiny_recipe))
    capsys.readouterr()
    assert main(["audit", "--verify", "--db", db]) == 1
    captured = capsys.readouterr()
    assert "dr.nobody" in captured.out
    assert captured.err.strip() == (
        "medops audit: chain BROKEN: entry 2: its hash does not match its content: edited "
        "after it was written"
    )


def test_approve_names_what_it_needs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MEDOPS_MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MEDOPS_AUDIT_DB", raising=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert main(["approve", "models:/m@champion", "--reason", "ok", "--tracking-uri", uri]) == 2
    assert "name one registered version, models:/<name>/<version>" in _error(capsys)
    assert main(["approve", "models:/m/1", "--reason", "ok"]) == 2
    assert "pass --tracking-uri or set MEDOPS_MLFLOW_TRACKING_URI" in _error(capsys)
    assert main(["approve", "models:/m/1", "--reason", "ok", "--tracking-uri", uri]) == 2
    assert f"no audit log at {tmp_path / 'audit.db'}" in _error(capsys)
    assert list(tmp_path.iterdir()) == [], "nothing created for a wrong store"


class _Registry:
    """The few MlflowClient calls settle_registered makes, in memory."""

    def __init__(self) -> None:
        self.tags: dict[str, str] = {}
        self.aliases: dict[str, str] = {}

    def set_model_version_tag(self, name: str, version: str, key: str, value: str) -> None:
        self.tags[key] = value

    def set_registered_model_alias(self, name: str, alias: str, version: str) -> None:
        self.aliases[alias] = version

    def get_model_version_by_alias(self, name: str, alias: str):
        raise mlflow.exceptions.MlflowException("no alias")

    def get_run(self, run_id: str) -> SimpleNamespace:
        """A training run with no privacy audit due (a classifier's)."""
        return SimpleNamespace(data=SimpleNamespace(tags={}, params={}))


def test_an_approval_recorded_for_this_run_moves_the_alias(tmp_path: Path) -> None:
    log = AuditLog(f"sqlite:///{tmp_path / 'audit.db'}")
    subject = "models:/m/4"
    log.append("dr.lee", "approve", subject, "pre-reviewed", {"mlflow_run_id": "run-a"})
    decision = Decision(True, "macro_f1", 0.9, 0.8, 0.75, "macro_f1 0.9000 >= threshold")
    context = {"mlflow_run_id": "run-a", "recipe_hash": "r", "dataset_hash": "d"}

    def settle(run_id: str) -> tuple[object, _Registry]:
        registry = _Registry()
        settled = settle_registered(
            log,
            registry,
            "m",
            "4",
            decision,
            "required",
            "champion",
            {**context, "mlflow_run_id": run_id},
            "medops approve models:/m/4 ...",
        )
        return settled, registry

    approval, registry = settle("run-a")
    assert approval.status == "approved" and registry.aliases == {"champion": "4"}
    assert approval.summary == "approved in audit entry 1 by dr.lee"
    assert registry.tags["approved_by"] == "dr.lee"
    # a version number reused by a rebuilt registry is another model: its approval is not this
    approval, registry = settle("run-b")
    assert approval.status == "pending" and registry.aliases == {}
    assert registry.tags["approval"] == "pending"
    assert [e.action for e in log.entries()] == ["approve", "gate", "alias", "gate"]
    assert log.verify().ok


def test_the_recipe_refuses_an_unknown_approval(tiny_recipe: Recipe) -> None:
    with pytest.raises(RecipeError, match=r"registry.approval: 'sometimes' is not allowed; use"):
        with_overrides(tiny_recipe, "registry.approval=sometimes")
    assert with_overrides(tiny_recipe, "registry.approval=required").registry.approval == (
        "required"
    )
