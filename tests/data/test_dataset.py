"""Reading prepared data stays light: no de-identification stack in workers or evaluators."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "module",
    ["medops.data.dataset", "medops.tasks.classification.loop", "medops.tasks.causal_lm.loop"],
)
def test_reading_prepared_data_imports_neither_spacy_nor_presidio(module: str) -> None:
    probe = (
        f"import sys, {module}; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('spacy', 'presidio_analyzer')))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
