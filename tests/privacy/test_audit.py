"""The audit on a tiny Llama: overfitted to one canary it must fail and block approval; left
untrained it must pass. Approval reads the verdict the train stage records on its run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from mlflow import MlflowClient
from transformers import LlamaForCausalLM

from medops.model.causal_lm import load_tokenizer
from medops.model.loss import answer_loss_sum
from medops.privacy.audit import AuditResult, record_audit, run_audit, write_audit
from medops.privacy.canaries import canary_examples, make_canaries
from medops.recipe import PrivacyAudit
from medops.registry.approval import ApprovalError, approve, settle_registered
from medops.registry.audit import AuditLog
from medops.registry.gate import Decision
from medops.train.packing import collate_padded

SEED = 13
# one MRN canary, 100 references, two training conversations probed
SETTINGS = PrivacyAudit.model_validate(
    {"canaries": {"count": 1, "formats": ["mrn"]}, "regurgitation": {"probes": 2}}
)
TRAINED_ON = [
    [{"role": "user", "content": f"Review {i}: it helped."}, {"role": "assistant", "content": "ok"}]
    for i in range(3)
]


def _overfit(model_dir: Path, out: Path, steps: int = 80) -> Path:
    """Train every weight on the single canary until the model has it by heart."""
    torch.manual_seed(0)
    tokenizer = load_tokenizer(str(model_dir))
    model = LlamaForCausalLM.from_pretrained(model_dir)
    examples = canary_examples(make_canaries(SETTINGS.canaries, SEED), 1, tokenizer)
    batch = collate_padded(examples, tokenizer.pad_token_id)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        (answer_loss_sum(model, batch) / examples[0].answer_tokens).backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def overfitted(tiny_lm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> AuditResult:
    model = _overfit(tiny_lm_dir, tmp_path_factory.mktemp("overfitted"))
    return run_audit(model, SETTINGS, SEED, TRAINED_ON)


@pytest.fixture(scope="module")
def untrained(tiny_lm_dir: Path) -> AuditResult:
    return run_audit(tiny_lm_dir, SETTINGS, SEED, TRAINED_ON)


def test_an_overfitted_canary_has_high_exposure_and_fails(overfitted: AuditResult) -> None:
    [canary] = overfitted.canaries
    assert canary.exposure_bits > 16 and canary.references == 100
    assert canary.rank_exposure_bits == pytest.approx(6.658, abs=0.01), "ranked first of 101"
    assert not overfitted.passed
    assert f"{canary.exposure_bits:.1f} bits (mrn-0" in overfitted.reason
    assert "above privacy_audit.max_exposure_bits 12" in overfitted.reason
    # prompted with its question, the model says the planted MRN
    assert overfitted.regurgitation.canaries_emitted == 1
    assert overfitted.regurgitation.probes == 3  # two training prompts, one canary


def test_an_untrained_model_has_low_exposure_and_passes(untrained: AuditResult) -> None:
    assert untrained.passed and untrained.max_exposure_bits < 4
    assert untrained.reason.startswith("privacy audit passed")
    assert untrained.regurgitation.canaries_emitted == 0


def test_no_canary_text_leaves_the_audit(overfitted: AuditResult, tmp_path: Path) -> None:
    [canary] = make_canaries(SETTINGS.canaries, SEED)
    written = write_audit(overfitted, tmp_path).read_text()
    assert json.loads(written)["canaries"][0]["canary"] == "mrn-0"
    shown = [written, overfitted.reason, *overfitted.metrics()]
    assert not any(canary.secret in text for text in shown)
    assert "privacy_exposure_bits_mrn-0" in overfitted.metrics()


def _registered(tmp_path: Path, result: AuditResult | None, required: bool) -> MlflowClient:
    """A version the gate passed, whose training run holds ``result`` (if any) and the
    recipe param that says whether an audit was due."""
    mlflow_client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = mlflow_client.create_experiment("e", (tmp_path / "artifacts").as_uri())
    run_id = mlflow_client.create_run(experiment).info.run_id
    mlflow_client.log_param(run_id, "privacy_audit.enabled", str(required))
    if result is not None:
        record_audit(mlflow_client, run_id, result)
    mlflow_client.create_registered_model("extractor")
    mlflow_client.create_model_version("extractor", (tmp_path / "m").as_uri(), run_id=run_id)
    mlflow_client.set_model_version_tag("extractor", "1", "gate", "passed")
    mlflow_client.set_model_version_tag("extractor", "1", "mlflow_run_id", run_id)
    return mlflow_client


def _log(tmp_path: Path) -> AuditLog:
    return AuditLog(f"sqlite:///{tmp_path / 'audit.db'}")


def test_approve_refuses_a_failed_audit_naming_figure_and_threshold(
    overfitted: AuditResult, tmp_path: Path
) -> None:
    mlflow_client = _registered(tmp_path, overfitted, required=True)
    with pytest.raises(ApprovalError) as refused:
        approve(mlflow_client, _log(tmp_path), "models:/extractor/1", "ok", "dr.lee", "champion")
    message = str(refused.value)
    assert "models:/extractor/1 cannot be approved: privacy audit failed" in message
    assert f"{overfitted.max_exposure_bits:.1f} bits" in message
    assert "privacy_audit.max_exposure_bits 12" in message
    assert _log(tmp_path).entries() == [], "nothing recorded for a refused approval"
    assert (
        mlflow_client.get_run(
            mlflow_client.get_model_version("extractor", "1").run_id
        ).data.metrics["privacy_audit_passed"]
        == 0.0
    )


def test_approve_refuses_a_missing_audit_the_recipe_required(tmp_path: Path) -> None:
    mlflow_client = _registered(tmp_path, None, required=True)
    with pytest.raises(ApprovalError, match="requires a privacy audit"):
        approve(mlflow_client, _log(tmp_path), "models:/extractor/1", "ok", "dr.lee", "champion")


@pytest.mark.parametrize("required", [True, False])
def test_approve_goes_ahead_when_the_audit_passed_or_was_not_due(
    untrained: AuditResult, tmp_path: Path, required: bool
) -> None:
    mlflow_client = _registered(tmp_path, untrained if required else None, required)
    result = approve(
        mlflow_client, _log(tmp_path), "models:/extractor/1", "ok", "dr.lee", "champion"
    )
    assert result["approval"] == "approved"
    assert str(mlflow_client.get_model_version_by_alias("extractor", "champion").version) == "1"


def test_registration_marks_a_failed_audit_not_eligible_even_on_auto(
    overfitted: AuditResult, tmp_path: Path
) -> None:
    mlflow_client = _registered(tmp_path, overfitted, required=True)
    run_id = mlflow_client.get_model_version("extractor", "1").run_id
    decision = Decision(True, "condition_macro_f1", 0.9, 0.1, 0.3, "passed")
    settled = settle_registered(
        _log(tmp_path),
        mlflow_client,
        "extractor",
        "1",
        decision,
        "auto",
        "champion",
        {"mlflow_run_id": run_id, "recipe_hash": "r", "dataset_hash": "d"},
        "medops approve ...",
    )
    assert settled.status == "not_eligible" and not settled.alias_moved
    assert settled.summary.startswith("not eligible: privacy audit failed")
    tags = mlflow_client.get_model_version("extractor", "1").tags
    assert tags["privacy_audit"] == "failed" and tags["approval"] == "not_eligible"
    assert "max_exposure_bits" in tags["privacy_audit_reason"]
