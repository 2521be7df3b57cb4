"""A small Label Studio REST client: projects, task import with predictions, JSON export.

Plain HTTP rather than ``label-studio-sdk``: the SDK pins numpy, pandas and pydantic
versions that conflict with medops', and the four calls used here are stable API. The
token comes from the environment (``MEDOPS_LABEL_STUDIO_TOKEN``), never from a recipe or a
log; errors name the call and the HTTP status, never a response body (it can hold text).
"""

from __future__ import annotations

import os
from typing import Any

import httpx

from medops.errors import ConfigurationError, MedopsError

URL_ENV, TOKEN_ENV = "MEDOPS_LABEL_STUDIO_URL", "MEDOPS_LABEL_STUDIO_TOKEN"


class ReviewServiceError(MedopsError, RuntimeError):
    """Label Studio refused or could not be reached."""


class LabelStudio:
    def __init__(self, url: str, token: str, timeout: float = 60.0) -> None:
        self.http = httpx.Client(
            base_url=url.rstrip("/"),
            headers={"Authorization": f"Token {token}"},
            timeout=timeout,
        )

    @classmethod
    def from_env(cls) -> LabelStudio:
        url, token = os.environ.get(URL_ENV), os.environ.get(TOKEN_ENV)
        if not url or not token:
            raise ConfigurationError(
                f"set {URL_ENV} (e.g. http://127.0.0.1:8090) and {TOKEN_ENV} (a Label Studio "
                "API token of the review admin) in the environment; docs/review.md"
            )
        return cls(url, token)

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise ReviewServiceError(
                f"Label Studio {method} {path}: {type(error).__name__}"
            ) from None
        if response.status_code >= 400:
            raise ReviewServiceError(
                f"Label Studio {method} {path}: HTTP {response.status_code}"
                + (" (check the token)" if response.status_code in (401, 403) else "")
            )
        return response.json() if response.content else None

    def find_project(self, title: str) -> dict[str, Any] | None:
        listed = self._call("GET", "/api/projects", params={"page_size": 1000})
        projects = listed["results"] if isinstance(listed, dict) else listed
        return next((p for p in projects if p["title"] == title), None)

    def ensure_project(self, title: str, config: str) -> int:
        """The project named ``title`` (its labeling config brought up to date), or a new one."""
        project = self.find_project(title)
        if project is None:
            created = self._call(
                "POST", "/api/projects", json={"title": title, "label_config": config}
            )
            return int(created["id"])
        if project.get("label_config") != config:
            self._call("PATCH", f"/api/projects/{project['id']}", json={"label_config": config})
        return int(project["id"])

    def prefill_with(self, project: int, model_version: str) -> None:
        """Pre-fill the labeling form with ``model_version``'s predictions."""
        settings = {"show_collab_predictions": True, "model_version": model_version}
        self._call("PATCH", f"/api/projects/{project}", json=settings)

    def import_tasks(self, project: int, tasks: list[dict[str, Any]]) -> int:
        answer = self._call("POST", f"/api/projects/{project}/import", json=tasks)
        return int(answer.get("task_count", len(tasks)))

    def task_ids(self, project: int) -> dict[str, int]:
        """medops item id -> Label Studio task id, for the items already in ``project``."""
        return {
            task["data"]["medops_id"]: int(task["id"])
            for task in self.export(project, with_unlabeled=True)
            if "medops_id" in task.get("data", {})
        }

    def export(self, project: int, with_unlabeled: bool = False) -> list[dict[str, Any]]:
        params = {"exportType": "JSON", "download_all_tasks": str(with_unlabeled).lower()}
        return list(self._call("GET", f"/api/projects/{project}/export", params=params))

    def annotate(self, task: int, result: list[dict[str, Any]], lead_time: float) -> int:
        """Submit an annotation as the token's user (an API reviewer, tests, scripts)."""
        made = self._call(
            "POST",
            f"/api/tasks/{task}/annotations",
            json={"result": result, "lead_time": lead_time},
        )
        return int(made["id"])
