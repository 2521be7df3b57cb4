"""The recipe of ``task: instruct``: a chat model LoRA-tuned on the user's conversations."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from medops.recipe import Gate, Recipe, Section
from medops.tasks.causal_lm.recipe import CausalLMTrain

SourceFormat = Literal["auto", "prompt-response", "alpaca", "sharegpt", "messages", "feedback"]


class InstructSource(Section):
    """One JSONL or Parquet file of records; ``pkg://package/path`` points into a package."""

    uri: str
    format: SourceFormat = Field(
        "auto",
        description="auto: detected from the first records' keys (the log names it); "
        "feedback: the feedback.jsonl of `medops review pull` (docs/review.md)",
    )
    role: Literal["train", "test"] = Field(
        "train", description="test conversations are held out: never trained on or selected on"
    )


class InstructData(Section):
    sources: list[InstructSource] = Field(min_length=1)
    validation_fraction: float = Field(0.1, gt=0.0, lt=0.5)
    keep_terms: list[str] = Field(
        default_factory=list, description="non-PHI vocabulary de-identification never touches"
    )


class ChatTask(Section):
    """How conversations are templated, trained on and scored."""

    system_prompt: str | None = Field(
        None,
        description="first turn of every conversation without its own system turn, at "
        "training, evaluation and serving alike (a caller's system text follows it)",
    )
    overlong: Literal["quarantine", "first_turns"] = Field(
        "quarantine",
        description="conversations over model.max_length tokens: quarantine them "
        "(too_many_tokens), or keep their first turns up to an assistant turn that fits",
    )
    packing: bool = Field(True, description="pack conversations into max_length rows")
    max_new_tokens: int = Field(64, ge=1)
    eval_batch_size: int = Field(16, ge=1)
    samples_in_report: int = Field(8, ge=0)
    eval_limit: int | None = Field(None, ge=1, description="score only the first N test rows")
    bootstrap_resamples: int = Field(1000, ge=100)

    def prompt_words(self) -> list[str]:
        return [self.system_prompt] if self.system_prompt else []

    def task_system_prompt(self) -> str | None:
        return self.system_prompt


class InstructRecipe(Recipe):
    """Gate metrics: rouge_l, exact_match, token_f1, answer_chars, empty_or_refusal (each with
    ``_ci_low``/``_ci_high``) and ``<name>_diff_ci_low`` for tuned minus base."""

    task: Literal["instruct"] = "instruct"
    data: InstructData  # type: ignore[assignment]  # conversations, not table columns
    train: CausalLMTrain = Field(default_factory=CausalLMTrain)
    lm: ChatTask = Field(default_factory=ChatTask)
    gate: Gate = Field(default_factory=lambda: Gate(metric="rouge_l", min_value=0.2))

    @model_validator(mode="after")
    def _instruct_checks(self) -> InstructRecipe:
        if self.train.method == "qlora" and not self.resources.use_gpu:
            raise ValueError("train.method qlora needs resources.use_gpu (bitsandbytes 4-bit)")
        return self

    def overlong_handling(self) -> str:
        return f"handled at prepare by `lm.overlong: {self.lm.overlong}`"
