"""The Helm binary the chart tests render with (``make venv`` fetches it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def helm() -> str:
    path = Path(os.environ.get("MEDOPS_HELM", ROOT / ".venv" / "bin" / "helm"))
    if not path.is_file():
        pytest.fail(
            f"helm not found at {path}: run `make venv` (it fetches Helm) or set MEDOPS_HELM"
        )
    return str(path)
