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


def version_uri(name: str, version: str) -> str:
    return f"models:/{name}/{version}"
