"""The real causal-LM train stage (Ray, tiny Llama) plants canaries in its training rows,
audits the model it exports and records the figures, never a canary, where approval and
the model card read them."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from medops.privacy.canaries import make_canaries
from medops.recipe import Recipe, build_recipe
from medops.registry.gate import Decision
from medops.registry.model_card import Registration, model_card, to_markdown
from medops.registry.tags import PRIVACY_RUN_TAG
from medops.registry.tracking import client
from medops.results import Evaluated, Prepared, Trained
from medops.stages import run_stage
from medops.tasks.causal_lm.recipe import CausalLMRecipe
from tests.conftest import tiny_lm_overrides, write_extraction_prepared

AUDIT = (
    "resources.num_workers=1",
    "train.epochs=1",
    "privacy_audit.canaries.count=2",
    "privacy_audit.canaries.repeats=3",
    "privacy_audit.canaries.references=30",
    "privacy_audit.regurgitation.probes=2",
    "privacy_audit.regurgitation.max_new_tokens=8",
)


def _recipe(run_dir: Path, model_dir: Path, *overrides: str) -> Recipe:
    return build_recipe(tiny_lm_overrides(run_dir, model_dir).to_dict(), [*AUDIT, *overrides])


@pytest.fixture(scope="module")
def trained(tiny_lm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    recipe = _recipe(tmp_path_factory.mktemp("run"), tiny_lm_dir)
    prepared = write_extraction_prepared(tmp_path_factory.mktemp("prepared"))
    out = tmp_path_factory.mktemp("trained")
    logged = _Collect()
    root = logging.getLogger()
    level, root.level = root.level, logging.INFO
    root.addHandler(logged)
    try:
        manifest = run_stage("train", recipe, out, {"prepared": prepared})
    finally:
        root.removeHandler(logged)
        root.setLevel(level)
    return {
        "recipe": recipe,
        "manifest": manifest,
        "out": out,
        "prepared": prepared,
        "logged": logged.lines,
    }


class _Collect(logging.Handler):
    """Every log line the train stage's process writes, for the no-secret check."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_canaries_join_the_training_rows_and_are_counted_apart(trained: dict) -> None:
    counts = trained["manifest"].counts
    assert counts["train_canary_examples"] == 6  # 2 canaries x 3 repeats
    assert counts["train_kept"] == counts["train_rows"] == 24, "real rows counted as before"
    assert counts["validation_kept"] == counts["validation_rows"] == 6, "never in validation"


def test_the_audit_is_written_recorded_and_secret_free(trained: dict) -> None:
    manifest, out, recipe = trained["manifest"], trained["out"], trained["recipe"]
    audit = manifest.extra["privacy_audit"]
    assert manifest.outputs["privacy_audit"] == "privacy_audit.json"
    assert audit["status"] in ("passed", "failed")
    assert [c["canary"] for c in audit["canaries"]] == ["mrn-0", "phone-1"]
    assert all(c["references"] == 30 and c["copies"] == 3 for c in audit["canaries"])
    run = client(recipe).get_run(manifest.extra["mlflow_run_id"]).data
    assert run.tags[PRIVACY_RUN_TAG] == audit["status"]
    assert run.metrics["privacy_max_exposure_bits"] == pytest.approx(audit["max_exposure_bits"])
    assert run.params["privacy_audit.enabled"] == "True", "approval reads this param"
    assert isinstance(recipe, CausalLMRecipe)
    secrets = [c.secret for c in make_canaries(recipe.privacy_audit.canaries, recipe.seed)]
    recorded = [
        (out / "manifest.json").read_text(),
        (out / "privacy_audit.json").read_text(),
        repr(run.tags),
        repr(run.params),
        repr(sorted(run.metrics)),
        *trained["logged"],
    ]
    assert any("privacy audit" in line for line in trained["logged"]), "the verdict is logged"
    assert not [s for s in secrets for text in recorded if s in text]


def test_the_model_card_shows_the_audit(trained: dict) -> None:
    recipe, out = trained["recipe"], trained["out"]
    registration = Registration(
        "condition-extractor", "1", "run", "abc", Decision(True, "m", 1.0, 0.0, 0.3, "ok"), "ok"
    )
    card = to_markdown(
        "card",
        model_card(
            recipe,
            Prepared.read(trained["prepared"]),
            Trained.read(out),
            Evaluated(out, {}, {}),
            registration,
        ),
    )
    section = card.split("## Privacy audit")[1].split("## Gate decision")[0]
    assert "| mrn-0 | 3 |" in section and "| phone-1 | 3 |" in section
    assert trained["manifest"].extra["privacy_audit"]["reason"] in section
    assert "canaries emitted:" in section


def test_a_disabled_audit_is_said_on_the_card(tiny_lm_dir: Path, tmp_path: Path) -> None:
    recipe = _recipe(tmp_path, tiny_lm_dir, "privacy_audit.enabled=false")
    trained = Trained(tmp_path, "run", None, {"privacy_audit": {"status": "disabled"}})
    prepared = Prepared(tmp_path, "e" * 64, {})
    registration = Registration(
        "m", "1", "run", "abc", Decision(True, "m", 1.0, 0.0, 0.3, "ok"), "ok"
    )
    card = to_markdown(
        "card", model_card(recipe, prepared, trained, Evaluated(tmp_path, {}, {}), registration)
    )
    assert "## Privacy audit\n\nNot run: the recipe sets `privacy_audit.enabled: false`" in card
