"""What a FineTune or ModelDeployment may name, as the platform team set it (chart values).

Creating a medops resource must give no more than training or serving a model: not a free
choice of image, ServiceAccount (and the cloud identity bound to it) or Secret. The chart
passes the allowed values in the operator's environment; a resource naming anything else
is refused before any object is built. An operator started without these variables (a
developer's) checks nothing and says so in its log once.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from medops.errors import MedopsError

log = logging.getLogger(__name__)
IMAGES_ENV = "MEDOPS_ALLOWED_IMAGE_PREFIXES"
ACCOUNTS_ENV = "MEDOPS_ALLOWED_SERVICE_ACCOUNTS"
SECRETS_ENV = "MEDOPS_ALLOWED_CREDENTIAL_REFS"
CLAIMS_ENV = "MEDOPS_ALLOWED_CLAIM_PATTERN"  # an RE2-compatible regex, searched as CEL does
_warned: list[bool] = []


class NotAllowed(MedopsError, ValueError):
    """A spec field names something outside the allowlist; says which and where to allow it."""


def _listed(env: Mapping[str, str], name: str) -> frozenset[str] | None:
    value = env.get(name)
    return None if value is None else frozenset(v.strip() for v in value.split(",") if v.strip())


def image_allowed(image: str, prefixes: frozenset[str]) -> bool:
    """``prefix`` is a repository (``registry/medops/medops``, any tag or digest of it) or a
    path ending in ``/`` (every repository below it)."""
    for prefix in prefixes:
        if prefix.endswith("/") and image.startswith(prefix):
            return True
        if image == prefix or image.startswith((f"{prefix}:", f"{prefix}@")):
            return True
    return False


@dataclass(frozen=True)
class Allowlist:
    images: frozenset[str] | None
    service_accounts: frozenset[str] | None
    secrets: frozenset[str] | None
    claims: re.Pattern[str] | None = None  # PVCs a FineTune may mount

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Allowlist:
        claims = env.get(CLAIMS_ENV)
        allowlist = cls(
            _listed(env, IMAGES_ENV),
            _listed(env, ACCOUNTS_ENV),
            _listed(env, SECRETS_ENV),
            re.compile(claims) if claims else None,
        )
        if allowlist.images is None and not _warned:
            _warned.append(True)
            log.warning("no %s: any image, ServiceAccount and Secret is accepted", IMAGES_ENV)
        return allowlist

    def check(self, spec: dict[str, Any]) -> None:
        """Refuse ``spec`` (a FineTune's or a ModelDeployment's) naming what is not allowed."""
        claim = (spec.get("storage") or {}).get("pvc")
        if self.claims is not None and claim and not self.claims.search(claim):
            raise NotAllowed(
                f"spec.storage.pvc {claim!r} is not a claim the platform team lets training "
                "mount; use one matching operator.allowedClaimPattern (chart values)"
            )
        image = spec.get("image")
        if self.images is not None and image and not image_allowed(image, self.images):
            raise NotAllowed(
                "spec.image is not from a repository the platform team allows; use one "
                "under operator.allowedImages (chart values)"
            )
        account = spec.get("serviceAccountName")
        if self.service_accounts is not None and account and account not in self.service_accounts:
            raise NotAllowed(
                f"spec.serviceAccountName {account!r} is not allowed; leave it out (pods run "
                "with no token) or ask for it in operator.allowedServiceAccounts"
            )
        secret = (spec.get("mlflow") or {}).get("secretRef")
        if self.secrets is not None and secret and secret not in self.secrets:
            raise NotAllowed(
                f"spec.mlflow.secretRef {secret!r} is not allowed; use the Secret the platform "
                "team named in operator.allowedSecrets"
            )
