"""Where MLflow lives for a recipe: a server URI, or SQLite + artifacts under output_dir."""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

from medops.recipe import Recipe

# MLflow's own MLFLOW_TRACKING_URI is written back into os.environ by set_tracking_uri, which
# would leak one recipe's store into the next run in the same process; ours is read-only.
TRACKING_ENV = "MEDOPS_MLFLOW_TRACKING_URI"


def tracking_uri(recipe: Recipe) -> str:
    """The environment first: on a cluster it is what the platform set (the operator, from
    an allowlisted FineTune/ModelDeployment field; KFP, from cluster.mlflow_secret), and a
    recipe's own URI must not redirect a pod's MLflow credentials elsewhere."""
    if os.environ.get(TRACKING_ENV):
        return os.environ[TRACKING_ENV]
    if recipe.registry.tracking_uri:
        return recipe.registry.tracking_uri
    store = (recipe.out / "mlflow").resolve()
    store.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{store / 'mlflow.db'}"


def redacted(uri: str) -> str:
    """``uri`` without a password, for what is stored or shown (manifests, summaries)."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def artifact_location(recipe: Recipe) -> str | None:
    """Artifacts beside the SQLite store (never ./mlruns); a server decides its own."""
    if tracking_uri(recipe).startswith("sqlite:///"):
        return (recipe.out / "mlflow" / "artifacts").resolve().as_uri()
    return None


def client(recipe: Recipe):
    """An MlflowClient on the recipe's store (import deferred: mlflow is slow to import)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri(recipe))


def flat_params(data: dict, prefix: str = "") -> dict[str, str]:
    """Recipe sections as MLflow params: ``train.lora.r`` -> "16"."""
    flat: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flat_params(value, f"{name}."))
        else:
            flat[name] = str(value)[:500]
    return flat


def open_run(recipe: Recipe, run_name: str) -> str:
    """Create the one MLflow run a training owns; later stages log into it by id."""
    mlflow_client = client(recipe)
    experiment = mlflow_client.get_experiment_by_name(recipe.registry.experiment)
    experiment_id = (
        experiment.experiment_id
        if experiment is not None
        else mlflow_client.create_experiment(
            recipe.registry.experiment, artifact_location=artifact_location(recipe)
        )
    )
    run = mlflow_client.create_run(
        experiment_id, run_name=run_name, tags={"medops.recipe_hash": recipe.content_hash()}
    )
    params = flat_params(recipe.to_dict())
    from mlflow.entities import Param

    items = [Param(k, v) for k, v in sorted(params.items())]
    for start in range(0, len(items), 100):
        mlflow_client.log_batch(run.info.run_id, params=items[start : start + 100])
    return run.info.run_id
