"""The recipe of ``task: causal-lm``: a chat model LoRA-tuned to answer JSON of named fields."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from medops.recipe import Evaluation, PrivacyAudit, Recipe, Section, Train


class CausalLMTrain(Train):
    grad_accum: int = Field(1, ge=1, description="micro-batches per optimizer step")
    max_steps: int | None = Field(None, ge=1, description="stop after this many optimizer steps")
    checkpoint_every: int = Field(
        0, ge=0, description="checkpoint every N optimizer steps (0: each epoch)"
    )
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="autocast dtype; auto = bf16 on a GPU that has it, else fp32"
    )
    gradient_checkpointing: bool = False


class TargetField(Section):
    """One key of the generated JSON: a prepared-row field, optionally binned from a number."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    source: str = Field(description="label, or a data.columns.extra name")
    bins: dict[str, tuple[float, float]] | None = Field(
        None, description="value -> [low, high] inclusive, e.g. negative: [1, 4]"
    )


class LanguageTask(Section):
    """How prepared rows become instruction examples."""

    format: Literal["extraction"] = Field(
        "extraction", description="extraction: de-identified text -> JSON of the target fields"
    )
    instruction: str = (
        "Extract from the patient's text the drug, the condition and the sentiment "
        "(negative, neutral or positive). Answer with JSON only."
    )
    fields: list[TargetField] = Field(default_factory=list)
    overlong: Literal["truncate", "skip"] = Field(
        "skip", description="examples longer than model.max_length: cut the prompt, or skip"
    )
    packing: bool = Field(True, description="pack examples into max_length rows, no cross-talk")
    max_new_tokens: int = Field(48, ge=1)
    eval_batch_size: int = Field(16, ge=1)
    samples_in_report: int = Field(20, ge=0)
    eval_limit: int | None = Field(None, ge=1, description="score only the first N test rows")
    few_shot: int = Field(
        0,
        ge=0,
        description="also score the untuned base prompted with N worked examples from the "
        "train split (prior chat turns; never test rows); 0: no few-shot baseline",
    )

    def prompt_words(self) -> list[str]:
        return [self.instruction]

    def task_system_prompt(self) -> str | None:
        return None  # the instruction rides in the user turn (serving.ExtractorPredictor)


class CausalLMRecipe(Recipe):
    """Gate metrics: condition_macro_f1, json_validity, exact_match_<field>, token_f1_<field>."""

    task: Literal["causal-lm"] = "causal-lm"
    train: CausalLMTrain = Field(default_factory=CausalLMTrain)
    lm: LanguageTask = Field(default_factory=LanguageTask)
    evaluate: Evaluation = Field(default_factory=Evaluation)
    privacy_audit: PrivacyAudit = Field(default_factory=PrivacyAudit)

    @model_validator(mode="after")
    def _causal_lm_checks(self) -> CausalLMRecipe:
        sliceable = self.features.sliceable if self.features else ()
        self.evaluate.check_slices(list(self.data.columns.extra), sliceable)
        known = {"label", *self.data.columns.extra}
        if not self.lm.fields:
            raise ValueError("lm.fields: extraction needs at least one target field")
        for target in self.lm.fields:
            if target.source not in known:
                raise ValueError(
                    f"lm.fields.{target.name}.source {target.source!r} is not a prepared "
                    f"field; use one of {', '.join(sorted(known))} (data.columns.extra)"
                )
        if self.train.method == "qlora" and not self.resources.use_gpu:
            raise ValueError("train.method qlora needs resources.use_gpu (bitsandbytes 4-bit)")
        return self

    def overlong_handling(self) -> str:
        return f"handled at training by `lm.overlong: {self.lm.overlong}` (the prompt adds tokens)"
