"""The register stage: log evaluation into the training's MLflow run, register, gate, alias."""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import logging
import os
import re
import subprocess
from pathlib import Path
from typing import Any

from medops.errors import MedopsError
from medops.manifest import MANIFEST, Manifest, timed
from medops.recipe import Recipe
from medops.registry.approval import Approval, approve_command, settle_registered, version_uri
from medops.registry.audit import AuditLog, audit_url
from medops.registry.gate import Decision, decide
from medops.registry.integrity import DIGESTS_TAG, artifact_digests
from medops.registry.model_card import (
    ARTIFACT_PATH,
    CARD_HTML,
    CARD_MD,
    Registration,
    write_model_card,
)
from medops.registry.tracking import client, redacted, tracking_uri
from medops.results import VOCABULARY, Evaluated, Prepared, Trained

log = logging.getLogger(__name__)
# evaluation files worth keeping in the run (generations.jsonl stays in the stage directory)
EVALUATION_ARTIFACTS = ("metrics.json", "report.html", "confusion.png")


def git_commit() -> str:
    """The code version that produced the model; containers pass it as MEDOPS_GIT_COMMIT."""
    if os.environ.get("MEDOPS_GIT_COMMIT"):
        return os.environ["MEDOPS_GIT_COMMIT"]
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],  # noqa: S607 - git from PATH, fixed arguments
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parent,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def metric_key(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_./ -]", "_", name)


def _task(recipe: Recipe) -> Any:
    """The recipe's task plug-in, found at run time (tasks sit above the registry)."""
    return importlib.import_module("medops.tasks").task_of(recipe)


def _vocabulary(prepared: Path) -> dict[str, str]:
    """The de-identification vocabulary prepare kept, so serving de-identifies alike."""
    path = prepared / VOCABULARY
    return {"deid_vocabulary": str(path)} if path.is_file() else {}


def log_version(
    task: Any, artifacts: dict[str, str], signature: Any, model_name: str, mlflow_client: Any
) -> str:
    """Log ``task``'s pyfunc with ``artifacts`` into the active run as a new version of
    ``model_name``, and record the artifacts' digests on it; returns the version.

    The digests are taken from the files this process is about to upload and kept in the
    registry (a version tag), so serving can tell the artifact store's copy was not changed
    (``medops.registry.integrity``). medops is pinned to the version that logged the model.
    """
    import mlflow

    digests = artifact_digests(artifacts)
    info = mlflow.pyfunc.log_model(
        name="model",
        python_model=str(task.pyfunc_path()),
        artifacts=artifacts,
        signature=signature,
        pip_requirements=[f"medops=={importlib.metadata.version('medops')}"],
        registered_model_name=model_name,
    )
    version = str(info.registered_model_version)
    mlflow_client.set_model_version_tag(model_name, version, DIGESTS_TAG, digests)
    return version


def register(
    recipe: Recipe, out_dir: Path, prepared: Path, trained: Path, evaluated: Path
) -> Manifest:
    manifest = Manifest(stage="register", recipe_hash=recipe.content_hash())
    with timed(manifest):
        import mlflow

        for name, path in (("prepared", prepared), ("trained", trained), ("evaluated", evaluated)):
            manifest.add_input(name, path / MANIFEST)
        task = _task(recipe)
        prepared_r, trained_r = Prepared.read(prepared), Trained.read(trained)
        evaluated_r = Evaluated.read(evaluated)
        run_id = trained_r.mlflow_run_id
        decision = decide(recipe.gate, evaluated_r.metrics)
        log.info(
            "register: gate %s (%s)", "PASSED" if decision.passed else "REFUSED", decision.reason
        )

        mlflow.set_tracking_uri(tracking_uri(recipe))
        mlflow_client = client(recipe)
        # opened before anything is registered: no version without its gate entry
        audit_db = audit_url(tracking_uri(recipe), recipe.out / "mlflow")
        audit = AuditLog(audit_db)
        with mlflow.start_run(run_id=run_id):
            mlflow.log_metrics({metric_key(k): v for k, v in evaluated_r.metrics.items()})
            mlflow.log_metrics(
                {f"data_{metric_key(k)}": float(v) for k, v in prepared_r.counts.items()}
            )
            for artifact in EVALUATION_ARTIFACTS:
                if (evaluated / artifact).is_file():
                    mlflow.log_artifact(str(evaluated / artifact), artifact_path="evaluation")
            for stage_dir in (prepared, trained, evaluated):
                mlflow.log_artifact(
                    str(stage_dir / MANIFEST), artifact_path=f"manifests/{stage_dir.name}"
                )
            version = log_version(
                task,
                {**task.function("artifacts")(recipe, trained_r, out_dir), **_vocabulary(prepared)},
                task.function("signature")(recipe, trained_r),
                recipe.registry.model_name,
                mlflow_client,
            )
        tags = {
            "recipe_hash": recipe.content_hash(),
            "dataset_hash": prepared_r.dataset_hash,
            "task": task.name,
            "git_commit": git_commit(),
            "gate": "passed" if decision.passed else "refused",
            "gate_reason": decision.reason,
            "mlflow_run_id": run_id,
            "deid_policy": recipe.deid.policy,
            **({"no_phi_reason": recipe.deid.no_phi_reason} if recipe.deid.no_phi_reason else {}),
        }
        for key, value in tags.items():
            mlflow_client.set_model_version_tag(recipe.registry.model_name, version, key, value)
        mlflow_client.set_tag(run_id, "medops.gate", tags["gate"])
        approval = _settle(recipe, mlflow_client, audit, audit_db, version, decision, tags)
        registration = Registration(
            recipe.registry.model_name,
            version,
            run_id,
            tags["git_commit"],
            decision,
            approval.summary,
            approval.audit["gate"].hash,
        )
        card = write_model_card(out_dir, recipe, prepared_r, trained_r, evaluated_r, registration)
        for path in card.values():
            mlflow_client.log_artifact(run_id, str(path), artifact_path=ARTIFACT_PATH)
        mlflow_client.set_terminated(run_id, status="FINISHED")

        model_uri = version_uri(recipe.registry.model_name, version)
        record = {
            **decision.to_dict(),
            "model_name": recipe.registry.model_name,
            "version": version,
            "model_uri": model_uri,
            "alias": recipe.registry.alias if approval.alias_moved else None,
            "approval": approval.status,
            "tags": tags,
        }
        (out_dir / "decision.json").write_text(json.dumps(record, indent=2) + "\n")
        manifest.outputs = {
            "decision": "decision.json",
            "model_card": CARD_MD,
            "model_card_html": CARD_HTML,
        }
        manifest.metrics = {decision.metric: decision.value, "baseline": decision.baseline}
        manifest.extra = {
            "gate_passed": decision.passed,
            "gate_reason": decision.reason,
            "gate_verdicts": decision.verdicts,
            "model_uri": model_uri,
            "version": version,
            "mlflow_run_id": run_id,
            "tracking_uri": redacted(tracking_uri(recipe)),
            "alias": record["alias"],
            **approval.to_extra(),
            "audit_db": redacted(audit_db),
        }
    return manifest


def _settle(
    recipe: Recipe,
    mlflow_client: Any,
    audit: AuditLog,
    audit_db: str,
    version: str,
    decision: Decision,
    tags: dict[str, str],
) -> Approval:
    """Gate entry in the audit log, then the approval the recipe asks for; says in the log
    how a person approves a version left pending."""
    name, alias = recipe.registry.model_name, recipe.registry.alias
    model_uri = version_uri(name, version)
    tracking = redacted(tracking_uri(recipe))
    # the CLI finds the log beside an SQLite MLflow store itself; elsewhere it must be told
    hint = approve_command(
        model_uri, tracking, None if _beside(tracking, audit_db) else redacted(audit_db), alias
    )
    context = {k: tags[k] for k in ("mlflow_run_id", "recipe_hash", "dataset_hash")}
    approval = settle_registered(
        audit,
        mlflow_client,
        name,
        version,
        decision,
        recipe.registry.approval,
        alias,
        {"model_name": name, "version": version, **context},
        hint,
    )
    if approval.status == "pending":
        log.info(
            "register: gate passed, approval required (registry.approval: required): alias %r "
            "NOT moved to %s until a person approves it: %s",
            alias,
            model_uri,
            hint,
        )
    else:
        log.info("register: approval %s (%s)", approval.status, approval.summary)
    return approval


def _beside(tracking: str, audit_db: str) -> bool:
    """Whether ``medops approve --tracking-uri`` alone finds this audit log."""
    try:
        return audit_url(tracking) == audit_db
    except MedopsError:
        return False
