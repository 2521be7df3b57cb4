"""The Helm chart and the real Helm binary the Makefile fetches into the venv (``make
venv``): what the chart tests and the registry's permission test render with."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.paths import ROOT

CHART = ROOT / "charts" / "medops"
# the one value a platform team must set (rendering fails without it: tests/charts)
API_SERVER = ["--set", "networkPolicy.apiServerCIDRs={10.0.0.1/32}"]


@pytest.fixture(scope="session")
def helm() -> str:
    path = Path(os.environ.get("MEDOPS_HELM", ROOT / ".venv" / "bin" / "helm"))
    if not path.is_file():
        pytest.fail(
            f"helm not found at {path}: run `make venv` (it fetches Helm) or set MEDOPS_HELM"
        )
    return str(path)


def run_helm(helm: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm, *args], capture_output=True, text=True, timeout=60)
