"""Which run a review push or a drift report reads: a run summary, or a clear refusal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medops.errors import MissingInputError
from medops.review.push import RunOutputs


def test_a_run_summary_names_the_prepared_and_evaluated_directories(tmp_path: Path) -> None:
    summary = tmp_path / "run-summary.json"
    outputs = {"prepare": "out/prepare", "evaluate": "out/evaluate", "train": "out/train"}
    summary.write_text(json.dumps({"outputs": outputs, "model_uri": "models:/m/3"}))
    run = RunOutputs.read(summary)
    assert (run.prepared, run.evaluated, run.model_uri) == (
        Path("out/prepare"),
        Path("out/evaluate"),
        "models:/m/3",
    )


def test_another_json_file_is_refused_naming_what_to_pass(tmp_path: Path) -> None:
    summary = tmp_path / "summary.json"  # the demo's printed summary: no outputs
    summary.write_text(json.dumps({"gate_passed": True, "model_uri": "models:/m/3"}))
    with pytest.raises(MissingInputError, match=r"not a run summary .*run-summary\.json"):
        RunOutputs.read(summary)
