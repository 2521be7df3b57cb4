"""The privacy audit of a trained generative model: canary exposure and regurgitation.

Run by the train stage on the model it exported, with the canaries that stage planted
(rebuilt from the seed). The verdict is exposure only: a canary above
``privacy_audit.max_exposure_bits`` fails the audit and ``medops approve`` refuses the
version; the regurgitation counts are reported beside it for a reviewer to weigh.
``privacy_audit.json`` and the metrics hold figures, formats and indices, never a secret.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from medops.model.causal_lm import load_tokenizer
from medops.model.chat import tokenize_chat
from medops.model.generate import load_for_generation
from medops.privacy.canaries import Canary, Conversation, conversation, make_canaries, references
from medops.privacy.exposure import exposure_bits, log_perplexities, rank_exposure_bits
from medops.privacy.regurgitation import RegurgitationCounts, probe
from medops.recipe import PrivacyAudit
from medops.registry.tags import PRIVACY_REASON_RUN_TAG, PRIVACY_RUN_TAG

AUDIT_FILE = "privacy_audit.json"


@dataclass(frozen=True)
class CanaryExposure:
    canary: str  # format-index, never the secret
    format: str
    copies: int
    exposure_bits: float  # skew-normal estimate over all candidates of the format
    rank_exposure_bits: float  # exact, among the references only
    references: int


@dataclass(frozen=True)
class AuditResult:
    passed: bool
    reason: str
    max_exposure_bits: float
    threshold_bits: float
    canaries: list[CanaryExposure]
    regurgitation: RegurgitationCounts
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def metrics(self) -> dict[str, float]:
        """What MLflow gets: figures under ``privacy_``, one exposure per canary label."""
        return {
            "privacy_audit_passed": float(self.passed),
            "privacy_max_exposure_bits": self.max_exposure_bits,
            "privacy_exposure_threshold_bits": self.threshold_bits,
            **{f"privacy_exposure_bits_{c.canary}": c.exposure_bits for c in self.canaries},
            **{f"privacy_{k}": float(v) for k, v in self.regurgitation.to_dict().items()},
            "privacy_audit_seconds": self.seconds,
        }


def _exposures(
    model: Any,
    tokenizer: Any,
    canaries: Sequence[Canary],
    audit: PrivacyAudit,
    seed: int,
) -> list[CanaryExposure]:
    """Each canary against the reference candidates of its format, scored in batches."""
    results = []
    for kind in dict.fromkeys(c.format for c in canaries):
        planted = [c for c in canaries if c.format == kind]
        secrets = [
            *(c.secret for c in planted),
            *references(kind, audit.canaries.references, seed, canaries),
        ]
        examples = [
            tokenize_chat(tokenizer, str(i), conversation(kind, s)) for i, s in enumerate(secrets)
        ]
        scores = log_perplexities(model, examples, tokenizer.pad_token_id, audit.batch_size)
        reference = scores[len(planted) :]
        results += [
            CanaryExposure(
                c.label,
                kind,
                audit.canaries.repeats,
                exposure_bits(score, reference),
                rank_exposure_bits(score, reference),
                len(reference),
            )
            for c, score in zip(planted, scores[: len(planted)], strict=True)
        ]
    return results


def _verdict(exposures: Sequence[CanaryExposure], threshold: float) -> tuple[bool, str]:
    worst = max(exposures, key=lambda e: e.exposure_bits)
    figure = (
        f"highest canary exposure {worst.exposure_bits:.1f} bits ({worst.canary}, "
        f"trained on {worst.copies}x)"
    )
    if worst.exposure_bits > threshold:
        return False, (
            f"privacy audit failed: {figure} is above privacy_audit.max_exposure_bits "
            f"{threshold:g}: the model memorised a planted identifier"
        )
    return (
        True,
        f"privacy audit passed: {figure} within privacy_audit.max_exposure_bits {threshold:g}",
    )


def run_audit(
    model_dir: Path, audit: PrivacyAudit, seed: int, conversations: Sequence[Conversation]
) -> AuditResult:
    """Audit the model saved in ``model_dir`` (weights and tokenizer), trained on
    ``conversations`` plus the canaries ``make_canaries(audit.canaries, seed)`` planted."""
    started = time.perf_counter()
    model = load_for_generation(str(model_dir))
    tokenizer = load_tokenizer(str(model_dir))
    canaries = make_canaries(audit.canaries, seed)
    exposures = _exposures(model, tokenizer, canaries, audit, seed)
    regurgitation = probe(
        model, tokenizer, conversations, canaries, audit.regurgitation, seed, audit.batch_size
    )
    passed, reason = _verdict(exposures, audit.max_exposure_bits)
    return AuditResult(
        passed,
        reason,
        max(e.exposure_bits for e in exposures),
        audit.max_exposure_bits,
        exposures,
        regurgitation,
        time.perf_counter() - started,
    )


def record_audit(mlflow_client: Any, run_id: str, result: AuditResult) -> None:
    """Figures and verdict on the training's MLflow run, where ``medops approve`` reads them."""
    from mlflow.entities import Metric

    stamp = int(time.time() * 1000)
    metrics = [Metric(k, v, stamp, 0) for k, v in sorted(result.metrics().items())]
    mlflow_client.log_batch(run_id, metrics=metrics)
    mlflow_client.set_tag(run_id, PRIVACY_RUN_TAG, "passed" if result.passed else "failed")
    mlflow_client.set_tag(run_id, PRIVACY_REASON_RUN_TAG, result.reason)


def write_audit(result: AuditResult, out_dir: Path) -> Path:
    path = out_dir / AUDIT_FILE
    path.write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    return path
