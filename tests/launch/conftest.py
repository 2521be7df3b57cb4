"""Fixtures for the launcher tests: a small valid recipe and fake stages in and out of process."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

import medops.stages
from medops.recipe import Recipe, build_recipe

FAKE_STAGES = Path(__file__).parent / "fake_stages"


@pytest.fixture
def recipe(tmp_path: Path) -> Recipe:
    return build_recipe(
        {
            "name": "launch-test",
            "output_dir": str(tmp_path / "run"),
            "data": {
                "sources": [
                    {"uri": "train.tsv", "role": "train"},
                    {"uri": "test.tsv", "role": "test"},
                ],
                "columns": {"id": "id", "text": "text", "label": "label"},
            },
        }
    )


@pytest.fixture
def fake_stages(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake stages here (monkeypatch) and in kfp.local's task subprocesses (PYTHONPATH)."""
    monkeypatch.syspath_prepend(str(FAKE_STAGES))
    for name, stage in list(medops.stages.STAGES.items()):
        fake = dataclasses.replace(stage, function=f"medops_fake_stages:{name}")
        monkeypatch.setitem(medops.stages.STAGES, name, fake)
    paths = [str(FAKE_STAGES), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(paths))
    monkeypatch.delenv("MEDOPS_FAKE_FAIL", raising=False)
