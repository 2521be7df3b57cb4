"""Who may do what in the MLflow registry: three identities, and a guard for what only the
approver may do.

MLflow's basic-auth levels cannot keep the serving alias with the approver on their own:
creating a model version, setting a version tag and moving an alias all need only EDIT on
the registered model, and whoever creates a registered model gets MANAGE on it. So the
MLflow server runs ``--app-name basic-auth`` with :func:`authenticate` as its
``authorization_function``: it authenticates exactly as MLflow does, then refuses an
approver-only request (:data:`APPROVER_ONLY`) from anyone without MANAGE on the registered
model. MLflow's own per-model validators still run afterwards for every request.

The identities get their levels from :func:`bootstrap` (the chart's Job runs it as the
MLflow admin): the pipeline EDIT (register versions, tag them ``pending``), the approver
MANAGE (approve, move aliases, create registered models), the operator READ.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from medops.errors import ConfigurationError
from medops.registry.tags import APPROVAL_AUDIT_TAG, APPROVAL_TAG

if TYPE_CHECKING:
    from flask import Response
    from werkzeug.datastructures import Authorization

log = logging.getLogger(__name__)

PIPELINE, APPROVER, OPERATOR = "pipeline", "approver", "operator"
ROLES = (PIPELINE, APPROVER, OPERATOR)
# (resource type, level) granted on every resource of that type ("*"): experiments hold the
# runs and artifacts predictors load; registered models hold the versions and aliases
GRANTS: Mapping[str, tuple[tuple[str, str], ...]] = {
    PIPELINE: (("experiment", "EDIT"), ("registered_model", "EDIT")),
    APPROVER: (("experiment", "READ"), ("registered_model", "MANAGE")),
    OPERATOR: (("experiment", "READ"), ("registered_model", "READ")),
}
# the version tags that record a decision (approval._tag_decision); the pipeline may set
# APPROVAL_TAG only to what the register stage writes before anyone decided
DECISION_TAGS = frozenset({APPROVAL_TAG, APPROVAL_AUDIT_TAG, "approved_by", "approved_at"})
UNDECIDED = frozenset({"pending", "not_eligible"})
# registry requests only MANAGE on the registered model allows (see _approver_only)
APPROVER_ONLY = (
    "SetRegisteredModelAlias",
    "RenameRegisteredModel",
    "CreateRegisteredModel",
    "SetModelVersionTag",
    "CreateModelVersion",
)
_GUARDING = "medops_registry_guarding"  # flask.g flag: MLflow's checks call us back


@dataclass(frozen=True)
class Identity:
    role: str
    username: str
    password: str


def _decides(tags: Iterable[Mapping[str, Any]]) -> bool:
    """Whether setting these tags records (or forges) an approval decision."""
    return any(
        t.get("key") in DECISION_TAGS
        and not (t.get("key") == APPROVAL_TAG and t.get("value") in UNDECIDED)
        for t in tags
    )


def _approver_only(request_type: str, body: Mapping[str, Any]) -> bool:
    if request_type == "SetModelVersionTag":
        return _decides([body])
    if request_type == "CreateModelVersion":
        return _decides(body.get("tags") or [])
    if request_type == "CreateRegisteredModel":
        # an existing name answers RESOURCE_ALREADY_EXISTS, which mlflow.register_model
        # expects; a new one would make its creator MANAGE it
        from mlflow.exceptions import MlflowException
        from mlflow.server.handlers import _get_model_registry_store

        try:
            _get_model_registry_store().get_registered_model(body.get("name", ""))
        except MlflowException:
            return True
        return False
    return True  # alias moves and renames


@functools.cache
def _routes() -> dict[tuple[str, str], str]:
    """(path, method) -> request type of the approver-only registry endpoints, REST and
    ajax, as MLflow itself routes them."""
    from mlflow.server.handlers import get_endpoints

    return {
        (path, method): handler.__name__
        for path, handler, methods in get_endpoints(lambda request_type: request_type)
        if isinstance(handler, type) and handler.__name__ in APPROVER_ONLY
        for method in methods
    }


def _forbidden(username: str, request_type: str) -> Response:
    from flask import jsonify

    message = (
        f"medops: {request_type} here moves an alias, records an approval or creates a "
        f"registered model: that needs MANAGE on the registered model (the approver "
        f"identity), and {username!r} has not got it"
    )
    response = jsonify({"error_code": "PERMISSION_DENIED", "message": message})
    response.status_code = 403
    return response


def authenticate() -> Authorization | Response:
    """MLflow's basic-auth ``authorization_function``, plus the approver-only rule.

    MLflow calls this for every request, and again from inside its own permission checks;
    the flag on ``flask.g`` makes those inner calls plain authentication.
    """
    from flask import g, request
    from mlflow.server import auth

    authorization = auth.authenticate_request_basic_auth()
    if isinstance(authorization, auth.Response) or g.get(_GUARDING):
        return authorization
    request_type = _routes().get((request.path, request.method))
    if request_type is None:
        return authorization
    setattr(g, _GUARDING, True)
    try:
        username = authorization.username or ""
        if auth.store.get_user(username).is_admin:
            return authorization
        if not _approver_only(request_type, request.get_json(silent=True) or {}):
            return authorization
        if auth._get_permission_from_registered_model_or_prompt_name().can_manage:
            return authorization
        log.warning("registry: refused %s by %s (needs MANAGE)", request_type, username)
        return _forbidden(username, request_type)
    finally:
        setattr(g, _GUARDING, False)


def identities_from_env(environ: Mapping[str, str]) -> list[Identity]:
    """The three identities from ``MEDOPS_MLFLOW_<ROLE>_USERNAME`` / ``_PASSWORD`` (the
    bootstrap Job maps each role's Secret onto these)."""
    found, missing = [], []
    for role in ROLES:
        keys = [f"MEDOPS_MLFLOW_{role.upper()}_{part}" for part in ("USERNAME", "PASSWORD")]
        values = [environ.get(key, "") for key in keys]
        missing += [key for key, value in zip(keys, values, strict=True) if not value]
        found.append(Identity(role, *values))
    if missing:
        raise ConfigurationError(f"registry access: set {', '.join(missing)}")
    if len({i.username for i in found}) != len(found):
        raise ConfigurationError("registry access: the three identities need three usernames")
    return found


def _ensure_user(auth_client: Any, identity: Identity) -> None:
    from mlflow.exceptions import RestException

    try:
        auth_client.get_user(identity.username)
    except RestException as error:
        if error.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        auth_client.create_user(identity.username, identity.password)
    else:  # the Secret is the truth: a rotated password takes effect on the next run
        auth_client.update_user_password(identity.username, identity.password)
    auth_client.update_user_admin(identity.username, False)  # an admin skips every check


def _grant(auth_client: Any, username: str, resource_type: str, permission: str) -> None:
    from mlflow.exceptions import RestException

    try:
        auth_client.grant_user_permission(username, resource_type, "*", permission)
    except RestException as error:
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        auth_client.revoke_user_permission(username, resource_type, "*")
        auth_client.grant_user_permission(username, resource_type, "*", permission)


def bootstrap(tracking_uri: str, identities: Iterable[Identity], models: Iterable[str]) -> None:
    """Create or update the identities and their grants, and create ``models``, as the
    MLflow admin (MLFLOW_TRACKING_USERNAME/PASSWORD); safe to run on every upgrade."""
    from mlflow import MlflowClient
    from mlflow.exceptions import RestException
    from mlflow.server import get_app_client

    auth_client = get_app_client("basic-auth", tracking_uri=tracking_uri)
    for identity in identities:
        _ensure_user(auth_client, identity)
        for resource_type, permission in GRANTS[identity.role]:
            _grant(auth_client, identity.username, resource_type, permission)
        log.info("registry access: %s is %s", identity.username, identity.role)
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    for name in models:
        try:
            client.create_registered_model(name)
        except RestException as error:
            if error.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
