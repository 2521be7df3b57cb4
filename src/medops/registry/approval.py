"""Human approval: a version the gate passed gets the serving alias once someone answers for it.

The gate checks numbers; a person (or, with ``registry.approval: auto``, the recipe, said
out loud as the actor) decides the version may reach patients. Every step is an entry in
the audit log (``registry.audit``) before it takes effect in the registry, so nothing moves
without a record: the gate decision, the approval or rejection, the alias move. The
version's tags mirror the latest decision (``approval``, ``approved_by``, ``approved_at``,
``approval_audit_hash``) so MLflow's UI and serving tools can show it. A version whose
training recipe required a privacy audit (``medops.privacy.audit``) must have passed it:
a failed or missing audit makes it not eligible, whoever asks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from medops.errors import MedopsError
from medops.registry.audit import AuditLog, Entry
from medops.registry.gate import Decision
from medops.registry.tags import (
    APPROVAL_AUDIT_TAG,
    APPROVAL_TAG,
    AUDIT_TAGS,
    GATE_AUDIT_TAG,
    PRIVACY_REASON_RUN_TAG,
    PRIVACY_REASON_TAG,
    PRIVACY_REQUIRED_PARAM,
    PRIVACY_RUN_TAG,
    PRIVACY_TAG,
    version_uri,
)

STAGE_ACTOR = "medops (register stage)"
DEFAULT_ALIAS = "champion"  # what `medops approve` moves unless told --alias
AUTO_ACTOR = "medops (auto: recipe registry.approval=auto)"
AUTO_REASON = (
    "recipe registry.approval is auto: the gate alone promotes (demo); no person reviewed "
    "this version"
)
_VERSION_URI = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>[0-9]+)$")


class ApprovalError(MedopsError):
    """A version that cannot be approved or rejected as asked; the message says why."""


@dataclass(frozen=True)
class Approval:
    """Where a freshly registered version stands, for the register stage's manifest."""

    status: str  # approved | pending | rejected | not_eligible
    summary: str  # in words, for the run summary
    alias_moved: bool
    audit: dict[str, Entry] = field(default_factory=dict)  # action -> its entry

    def to_extra(self) -> dict[str, Any]:
        return {
            "approval": self.status,
            "approval_summary": self.summary,
            "approved_by": self.audit["approve"].actor if "approve" in self.audit else None,
            "audit": {action: entry.hash for action, entry in self.audit.items()},
        }


def parse_version_uri(model_uri: str) -> tuple[str, str]:
    match = _VERSION_URI.match(model_uri)
    if match is None:
        raise ApprovalError(
            f"{model_uri!r}: name one registered version, models:/<name>/<version> "
            "(an alias moves; what is approved is a version)"
        )
    return match["name"], match["version"]


def approve_command(model_uri: str, tracking: str, audit_db: str | None, alias: str) -> str:
    """The command a person runs to approve ``model_uri`` (for the register stage's log)."""
    command = f'medops approve {model_uri} --reason "<why>" --tracking-uri {tracking}'
    if alias != DEFAULT_ALIAS:
        command += f" --alias {alias}"
    return command + (f" --db {audit_db}" if audit_db else "")


@dataclass(frozen=True)
class PrivacyVerdict:
    """The privacy audit as the version's training run records it."""

    status: str  # passed | failed | missing | not_required
    reason: str

    @property
    def blocks(self) -> bool:
        """Anything but a pass or no audit due: an unknown tag value blocks too."""
        return self.status not in ("passed", "not_required")


def privacy_verdict(client: Any, run_id: str) -> PrivacyVerdict:
    """Read from the training run: its tags (the audit's verdict, set by the train stage) and
    its params (the recipe it ran, which says whether an audit was due)."""
    data = client.get_run(run_id).data
    status = data.tags.get(PRIVACY_RUN_TAG)
    if status is not None:
        return PrivacyVerdict(status, data.tags.get(PRIVACY_REASON_RUN_TAG, "no reason recorded"))
    if data.params.get(PRIVACY_REQUIRED_PARAM) == "True":
        return PrivacyVerdict(
            "missing",
            "its recipe requires a privacy audit (privacy_audit.enabled) and its training run "
            "records none; train it again with this medops",
        )
    return PrivacyVerdict(
        "not_required",
        "no privacy audit due (not a generative recipe, or privacy_audit.enabled: false)",
    )


def _tag_decision(client: Any, name: str, version: str, status: str, entry: Entry) -> None:
    tags = {
        APPROVAL_TAG: status,
        "approved_by": entry.actor,
        "approved_at": entry.at,
        APPROVAL_AUDIT_TAG: entry.hash,
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)


def _alias_holder(client: Any, name: str, alias: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def move_alias(
    client: Any, log: AuditLog, name: str, version: str, alias: str, actor: str, reason: str
) -> Entry:
    """Record, then move ``alias`` to ``version``: nothing moves without its entry."""
    entry = log.append(
        actor,
        "alias",
        version_uri(name, version),
        reason,
        {
            "model_name": name,
            "version": version,
            "alias": alias,
            "previous_version": _alias_holder(client, name, alias),
        },
    )
    client.set_registered_model_alias(name, alias, version)
    return entry


def settle_registered(
    log: AuditLog,
    client: Any,
    name: str,
    version: str,
    decision: Decision,
    approval: str,
    alias: str,
    context: dict[str, str],
    pending_hint: str,
) -> Approval:
    """The register stage's part: record the gate, then approve automatically, honour an
    approval already recorded for this run's version, or leave it pending."""
    subject, run_id = version_uri(name, version), context["mlflow_run_id"]
    gate = log.append(
        STAGE_ACTOR,
        "gate",
        subject,
        decision.reason,
        {**{k: v for k, v in decision.to_dict().items() if k != "reason"}, **context},
    )
    client.set_model_version_tag(name, version, GATE_AUDIT_TAG, gate.hash)
    entries = {"gate": gate}
    privacy = privacy_verdict(client, run_id)
    client.set_model_version_tag(name, version, PRIVACY_TAG, privacy.status)
    client.set_model_version_tag(name, version, PRIVACY_REASON_TAG, privacy.reason)
    if not decision.passed or privacy.blocks:
        why = "the gate refused it" if not decision.passed else privacy.reason
        client.set_model_version_tag(name, version, APPROVAL_TAG, "not_eligible")
        return Approval("not_eligible", f"not eligible: {why}", False, entries)
    if approval == "auto":
        entries["approve"] = log.append(
            AUTO_ACTOR, "approve", subject, AUTO_REASON, {**context, "gate": "passed"}
        )
        _tag_decision(client, name, version, "approved", entries["approve"])
        entries["alias"] = move_alias(client, log, name, version, alias, AUTO_ACTOR, AUTO_REASON)
        return Approval("approved", "auto-approved (demo)", True, entries)
    earlier = log.decision(subject, run_id)
    if earlier is not None and earlier.action == "approve":
        entries["approve"] = earlier
        _tag_decision(client, name, version, "approved", earlier)
        reason = f"approved in audit entry {earlier.seq} by {earlier.actor}"
        entries["alias"] = move_alias(client, log, name, version, alias, STAGE_ACTOR, reason)
        return Approval("approved", reason, True, entries)
    if earlier is not None:
        entries["reject"] = earlier
        _tag_decision(client, name, version, "rejected", earlier)
        return Approval("rejected", f"rejected by {earlier.actor}", False, entries)
    client.set_model_version_tag(name, version, APPROVAL_TAG, "pending")
    return Approval(
        "pending", f"pending: alias {alias!r} not moved; {pending_hint}", False, entries
    )


def _version(client: Any, name: str, version: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version(name, version)
    except MlflowException:
        raise ApprovalError(
            f"{version_uri(name, version)}: no such registered version in this MLflow store "
            "(check --tracking-uri)"
        ) from None


def _run_details(found: Any, name: str, version: str) -> dict[str, Any]:
    return {
        "model_name": name,
        "version": version,
        "mlflow_run_id": found.tags.get("mlflow_run_id") or found.run_id,
        "gate": found.tags.get("gate"),
        "previous_approval": found.tags.get(APPROVAL_TAG),
    }


def approve(
    client: Any, log: AuditLog, model_uri: str, reason: str, actor: str, alias: str
) -> dict[str, Any]:
    """`medops approve`: record the approval, tag the version, move ``alias`` to it."""
    name, version = parse_version_uri(model_uri)
    found = _version(client, name, version)
    gate = found.tags.get("gate")
    if gate != "passed":
        why = (
            f"the gate refused it ({found.tags.get('gate_reason', 'no reason recorded')})"
            if gate == "refused"
            else "it has no gate tag: it was not registered by medops' register stage"
        )
        raise ApprovalError(
            f"{model_uri} cannot be approved: {why}. Only a version that passed the gate can "
            "get an alias; train a better one, or reject this one (medops reject)"
        )
    details = _run_details(found, name, version)
    privacy = privacy_verdict(client, details["mlflow_run_id"])
    if privacy.blocks:
        raise ApprovalError(
            f"{model_uri} cannot be approved: {privacy.reason}. Train again with less "
            "memorisation (fewer epochs or repeats, a lower learning rate, deduplicated data), "
            "or reject this one (medops reject)"
        )
    entry = log.append(actor, "approve", model_uri, reason, details)
    _tag_decision(client, name, version, "approved", entry)
    moved = move_alias(
        client, log, name, version, alias, actor, f"approved in audit entry {entry.seq}"
    )
    return {
        "model_uri": model_uri,
        "approval": "approved",
        "approved_by": actor,
        "audit_entry": entry.seq,
        "audit_hash": entry.hash,
        "alias": alias,
        "previous_version": moved.details["previous_version"],
    }


def reject(client: Any, log: AuditLog, model_uri: str, reason: str, actor: str) -> dict[str, Any]:
    """`medops reject`: record the rejection and tag the version; aliases stay where they are
    (moving one away is approving another version)."""
    name, version = parse_version_uri(model_uri)
    found = _version(client, name, version)
    entry = log.append(actor, "reject", model_uri, reason, _run_details(found, name, version))
    _tag_decision(client, name, version, "rejected", entry)
    result: dict[str, Any] = {
        "model_uri": model_uri,
        "approval": "rejected",
        "rejected_by": actor,
        "audit_entry": entry.seq,
        "audit_hash": entry.hash,
    }
    held = sorted(getattr(found, "aliases", None) or [])
    if held:
        result["warning"] = (
            f"{model_uri} still holds alias {', '.join(held)}: approve another version to "
            "move it (medops approve models:/<name>/<version> --alias ...)"
        )
    return result


def anchors(client: Any) -> list[str]:
    """Audit hashes the registry holds as version tags: the chain must still contain them."""
    hashes: set[str] = set()
    token = None
    while True:
        page = client.search_model_versions(page_token=token)
        hashes.update(v.tags[tag] for v in page for tag in AUDIT_TAGS if v.tags.get(tag))
        token = page.token
        if not token:
            return sorted(hashes)
