"""The model-version tags that carry a version's gate and approval outside the audit log.

Kept apart from ``approval`` (which needs the gate and the evaluate layer) so the operator
can read them: it deploys only a version whose approval tag says approved and, with the
audit database, whose approval hash is in the chain.
"""

from __future__ import annotations

APPROVAL_TAG = "approval"
GATE_AUDIT_TAG = "gate_audit_hash"
APPROVAL_AUDIT_TAG = "approval_audit_hash"
AUDIT_TAGS = (GATE_AUDIT_TAG, APPROVAL_AUDIT_TAG)  # hashes kept outside the audit database
# the privacy audit (medops.privacy.audit): the train stage tags its MLflow run, the register
# stage mirrors the verdict on the version; the recipe's own param says whether it was due
PRIVACY_RUN_TAG = "medops.privacy_audit"  # passed | failed
PRIVACY_REASON_RUN_TAG = "medops.privacy_audit_reason"
PRIVACY_REQUIRED_PARAM = "privacy_audit.enabled"
PRIVACY_TAG = "privacy_audit"  # passed | failed | missing | not_required
PRIVACY_REASON_TAG = "privacy_audit_reason"


def version_uri(name: str, version: str) -> str:
    return f"models:/{name}/{version}"
