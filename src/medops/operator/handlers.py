"""kopf wiring: every event and a periodic timer call the same reconcile function.

The timer is what makes the operator follow the world when no Kubernetes event says so:
a RayJob finishing, an MLflow alias moving to a new version (promotion -> rollout).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import kopf

from medops.operator.objects import GROUP, VERSION
from medops.operator.reconcile import reconcile_deployment, reconcile_finetune
from medops.operator.status import TERMINAL, status_patch

SYNC_SECONDS = float(os.environ.get("MEDOPS_SYNC_SECONDS", "30"))


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    # one replica: no peering objects to install or grant
    settings.peering.standalone = True
    settings.persistence.finalizer = f"{GROUP}/operator"
    # handler progress in annotations: status belongs to the CRD's schema and would prune it
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=GROUP)
    settings.posting.level = logging.WARNING


def _write(patch: kopf.Patch, body: kopf.Body, status: dict[str, Any]) -> None:
    for key, value in status_patch(dict(body.get("status") or {}), status).items():
        patch.status[key] = value


def _plain(body: kopf.Body) -> dict[str, Any]:
    return {key: body[key] for key in body}


def _unfinished(status: kopf.Status, **_: Any) -> bool:
    return status.get("phase") not in TERMINAL


@kopf.on.resume(GROUP, VERSION, "finetunes")
@kopf.on.create(GROUP, VERSION, "finetunes")
@kopf.timer(GROUP, VERSION, "finetunes", interval=SYNC_SECONDS, when=_unfinished)
def sync_finetune(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    _write(patch, body, reconcile_finetune(_plain(body)))


@kopf.on.resume(GROUP, VERSION, "modeldeployments")
@kopf.on.create(GROUP, VERSION, "modeldeployments")
@kopf.on.update(GROUP, VERSION, "modeldeployments", field="spec")
@kopf.timer(GROUP, VERSION, "modeldeployments", interval=SYNC_SECONDS)
def sync_deployment(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
    _write(patch, body, reconcile_deployment(_plain(body)))
