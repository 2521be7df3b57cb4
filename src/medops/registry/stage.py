"""The register stage: log evaluation into the training's MLflow run, register, gate, alias."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
from pathlib import Path

from medops.manifest import MANIFEST, Manifest, read_manifest, timed
from medops.recipe import Recipe
from medops.registry.gate import decide
from medops.registry.tracking import client, tracking_uri

log = logging.getLogger(__name__)
PYFUNC_CODE = {
    "classification": Path(__file__).with_name("pyfunc_model.py"),
    "causal-lm": Path(__file__).with_name("lm_pyfunc_model.py"),
}
# evaluation files worth keeping in the run (generations.jsonl stays in the stage directory)
EVALUATION_ARTIFACTS = ("metrics.json", "report.html", "confusion.png")


def git_commit() -> str:
    """The code version that produced the model; containers pass it as MEDOPS_GIT_COMMIT."""
    if os.environ.get("MEDOPS_GIT_COMMIT"):
        return os.environ["MEDOPS_GIT_COMMIT"]
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
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


def _signature(recipe: Recipe, trained_extra: dict):
    """text in; the label and class probabilities, or the answer and its fields, out."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    if recipe.task == "causal-lm":
        names = ["answer", "json_valid", *trained_extra["fields"]]
        outputs = [ColSpec("boolean" if n == "json_valid" else "string", n) for n in names]
    else:
        outputs = [ColSpec("string", "label")]
        outputs += [ColSpec("double", name) for name in trained_extra["labels"]]
    return ModelSignature(inputs=Schema([ColSpec("string", "text")]), outputs=Schema(outputs))


def _artifacts(recipe: Recipe, trained: Path, out_dir: Path) -> dict[str, str]:
    """The files the pyfunc loads: the model, and for a causal LM how it is prompted."""
    artifacts = {"model": str(trained / "model")}
    if recipe.task == "causal-lm":
        lm = out_dir / "lm.json"
        lm.write_text(json.dumps(recipe.lm.model_dump(mode="json"), indent=2) + "\n")
        artifacts["lm"] = str(lm)
    return artifacts


def register(
    recipe: Recipe, out_dir: Path, prepared: Path, trained: Path, evaluated: Path
) -> Manifest:
    manifest = Manifest(stage="register", recipe_hash=recipe.content_hash())
    with timed(manifest):
        import mlflow

        for name, path in (("prepared", prepared), ("trained", trained), ("evaluated", evaluated)):
            manifest.add_input(name, path / MANIFEST)
        prepared_m, trained_m = read_manifest(prepared), read_manifest(trained)
        evaluated_m = read_manifest(evaluated)
        run_id = trained_m["extra"]["mlflow_run_id"]
        decision = decide(recipe.gate, evaluated_m["metrics"])
        log.info(
            "register: gate %s (%s)", "PASSED" if decision.passed else "REFUSED", decision.reason
        )

        mlflow.set_tracking_uri(tracking_uri(recipe))
        mlflow_client = client(recipe)
        with mlflow.start_run(run_id=run_id):
            mlflow.log_metrics({metric_key(k): v for k, v in evaluated_m["metrics"].items()})
            mlflow.log_metrics(
                {f"data_{metric_key(k)}": float(v) for k, v in prepared_m["counts"].items()}
            )
            for path in EVALUATION_ARTIFACTS:
                if (evaluated / path).is_file():
                    mlflow.log_artifact(str(evaluated / path), artifact_path="evaluation")
            for stage_dir in (prepared, trained, evaluated):
                mlflow.log_artifact(
                    str(stage_dir / MANIFEST), artifact_path=f"manifests/{stage_dir.name}"
                )
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(PYFUNC_CODE[recipe.task]),
                artifacts=_artifacts(recipe, trained, out_dir),
                signature=_signature(recipe, trained_m["extra"]),
                pip_requirements=["medops"],
                registered_model_name=recipe.registry.model_name,
            )
        version = str(info.registered_model_version)
        tags = {
            "recipe_hash": recipe.content_hash(),
            "dataset_hash": prepared_m["extra"]["dataset_hash"],
            "git_commit": git_commit(),
            "gate": "passed" if decision.passed else "refused",
            "gate_reason": decision.reason,
            "mlflow_run_id": run_id,
        }
        for key, value in tags.items():
            mlflow_client.set_model_version_tag(recipe.registry.model_name, version, key, value)
        mlflow_client.set_tag(run_id, "medops.gate", tags["gate"])
        if decision.passed:
            mlflow_client.set_registered_model_alias(
                recipe.registry.model_name, recipe.registry.alias, version
            )
        mlflow_client.set_terminated(run_id, status="FINISHED")

        model_uri = f"models:/{recipe.registry.model_name}/{version}"
        record = {
            **decision.to_dict(),
            "model_name": recipe.registry.model_name,
            "version": version,
            "model_uri": model_uri,
            "alias": recipe.registry.alias if decision.passed else None,
            "tags": tags,
        }
        (out_dir / "decision.json").write_text(json.dumps(record, indent=2) + "\n")
        manifest.outputs = {"decision": "decision.json"}
        manifest.metrics = {decision.metric: decision.value, "baseline": decision.baseline}
        manifest.extra = {
            "gate_passed": decision.passed,
            "gate_reason": decision.reason,
            "model_uri": model_uri,
            "version": version,
            "mlflow_run_id": run_id,
            "tracking_uri": tracking_uri(recipe),
        }
    return manifest
