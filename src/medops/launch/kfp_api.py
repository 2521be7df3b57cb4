"""Talk to a Kubeflow Pipelines API server: submit a recipe's pipeline, read a run's state.

``kfp.Client`` retries an unreachable host for half a minute and answers a refused token
with a traceback, so every call here first makes one short request of its own (the v2
healthz endpoint, with the same credentials) and turns what went wrong into a one-line
``ClusterError``: cannot reach, refused the credentials, or not a KFP API.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import tempfile
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kfp
import kfp_server_api
import urllib3

from medops.launch.compile import compile_pipeline
from medops.launch.errors import ClusterError
from medops.recipe import Recipe

HEALTHZ = "/apis/v2beta1/healthz"
REACH_TIMEOUT_SECONDS = 5.0


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect from the API is a login page (Dex, IAP, oauth2-proxy), not an answer."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def check_reachable(host: str, token: str | None = None) -> None:
    """One short GET of the healthz endpoint; raise ``ClusterError`` unless it answers 200."""
    if not host.startswith(("http://", "https://")):
        raise ClusterError(f"--host {host!r}: use an http:// or https:// URL of the KFP API")
    request = urllib.request.Request(host.rstrip("/") + HEALTHZ)  # noqa: S310 - scheme checked
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=REACH_TIMEOUT_SECONDS):
            return
    except urllib.error.HTTPError as error:
        if error.code in (401, 403) or 300 <= error.code < 400:
            raise _refused(host, error.code) from None
        raise ClusterError(
            f"{host} answered HTTP {error.code} on {HEALTHZ}: is it the Kubeflow Pipelines "
            "API (v2) address, e.g. http://ml-pipeline-ui.kubeflow or a port-forward?"
        ) from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise ClusterError(f"cannot reach the Kubeflow Pipelines API at {host}: {reason}") from None


def connect(host: str, token: str | None = None, namespace: str | None = None) -> kfp.Client:
    """A ``kfp.Client`` for ``host``, after the one-shot reachability check."""
    check_reachable(host, token)
    with warnings.catch_warnings(), api_errors(host):
        warnings.simplefilter("ignore", FutureWarning)  # "only works with KFP v2.0.0-beta.2+"
        return kfp.Client(host=host, existing_token=token, namespace=namespace or "kubeflow")


@contextlib.contextmanager
def api_errors(host: str, subject: str = "") -> Iterator[None]:
    """Turn the KFP client's exceptions into one-line ``ClusterError``s (and mute its prints)."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    except kfp_server_api.ApiException as error:
        if error.status in (401, 403):
            raise _refused(host, error.status) from None
        if error.status == 404 and subject:
            raise ClusterError(f"{host} has no {subject}") from None
        raise ClusterError(f"{host} answered HTTP {error.status} {error.reason}") from None
    except urllib3.exceptions.HTTPError as error:
        raise ClusterError(f"cannot reach the Kubeflow Pipelines API at {host}: {error}") from None


def submit(
    recipe: Recipe,
    host: str,
    namespace: str | None = None,
    experiment: str | None = None,
    token: str | None = None,
) -> dict[str, str]:
    """Compile ``recipe``'s cluster pipeline, then create a run of it; nothing is sent
    unless the recipe compiles."""
    with tempfile.TemporaryDirectory(prefix="medops-submit-") as scratch:
        package = compile_pipeline(recipe, Path(scratch) / "pipeline.yaml")
        client = connect(host, token, namespace)
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")
        run_name = f"{recipe.name}-{recipe.content_hash()[:8]}-{stamp}"
        experiment = experiment or recipe.registry.experiment
        with api_errors(host):
            result = client.create_run_from_pipeline_package(
                str(package),
                arguments={},
                run_name=run_name,
                experiment_name=experiment,
                namespace=namespace,
            )
    return {
        "run_id": result.run_id,
        "run_name": run_name,
        "experiment": experiment,
        "url": f"{host.rstrip('/')}/#/runs/details/{result.run_id}",
    }


def run_status(run_id: str, host: str, token: str | None = None) -> dict[str, Any]:
    """A run's state, times, error and the state of each of its tasks."""
    client = connect(host, token)
    with api_errors(host, f"run {run_id}"):
        run = client.get_run(run_id)
    details = run.run_details.task_details if run.run_details else None
    return {
        "run_id": run.run_id,
        "name": run.display_name,
        "state": run.state,
        "created_at": _iso(run.created_at),
        "finished_at": _iso(run.finished_at),
        "error": run.error.message if run.error else None,
        "tasks": {task.display_name: task.state for task in details or []},
    }


def _refused(host: str, status: int) -> ClusterError:
    return ClusterError(
        f"{host} refused the credentials (HTTP {status}): pass a bearer token with "
        "--token-env VAR, the name of an environment variable that holds it"
    )


def _iso(moment: datetime.datetime | None) -> str | None:
    return moment.isoformat() if moment else None
