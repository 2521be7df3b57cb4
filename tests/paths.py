"""Paths the tests share."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the repository
# Upstream KServe and KubeRay CRDs, vendored for the schema tests (see crds/SOURCE.md)
UPSTREAM_CRDS = Path(__file__).resolve().parent / "crds"
