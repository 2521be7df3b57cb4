"""Serving registered extraction models: OpenAI chat routes plus v1/v2 extraction.

A version is loaded as its LoRA adapter on the recipe's base model (weights only, from
safetensors: no code from the artifact runs), so the champion and any ``serve.adapters``
(a challenger) share one base in memory; a version without an adapter (full fine-tuning)
is served alone from its merged weights. v1/v2 requests are prompted exactly as evaluation
prompted (the version's ``lm.json``) and answer the parsed fields. A recipe with
``features:`` trained the model with a context line: each request's entity (v1: the
instance's key, v2: an input named after it, OpenAI: ``medops``) is looked up in the
online store and its line placed in the prompt as training placed it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import typing
import uuid
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch
from kserve.protocol.infer_type import InferOutput, InferResponse
from pydantic import BaseModel

from medops.deid.filters import vocabulary
from medops.errors import ConfigurationError
from medops.evaluate.generation_metrics import parse_answer
from medops.features.online import FeatureLookup, serving_lookup, serving_repo
from medops.model.base import resolve_base
from medops.model.decode import Finished, GenerationParams
from medops.model.precision import serving_dtype
from medops.recipe import Recipe
from medops.registry.integrity import fetch_checked
from medops.review.store import FeedbackStore, store_url
from medops.serve import v2
from medops.serve.chat_model import Recorder, ServedLM
from medops.serve.generation import EntityContext
from medops.serve.model import (
    Batch,
    PyfuncPredictor,
    Scored,
    context_status,
    load_guard,
)
from medops.tasks.causal_lm import TASK
from medops.tasks.causal_lm.examples import prompt_messages, with_context
from medops.tasks.causal_lm.recipe import LanguageTask

logger = logging.getLogger("kserve.medops")
REQUIRED = ("answer", "json_valid")


def _load_weights(
    recipe: Recipe, versions: dict[str, dict[str, Path]], dtype: torch.dtype
) -> tuple[Any, dict[str, str | None]]:
    """One model for every served name: adapters on the base, or one merged model."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    if all("adapter" in a for a in versions.values()):
        base = AutoModelForCausalLM.from_pretrained(
            resolve_base(recipe.model.base), dtype=dtype, use_safetensors=True
        )
        names = list(versions)
        model = PeftModel.from_pretrained(
            base, str(versions[names[0]]["adapter"]), adapter_name=names[0]
        )
        for name in names[1:]:
            model.load_adapter(str(versions[name]["adapter"]), adapter_name=name)
        return model.eval(), {name: name for name in names}
    if len(versions) > 1:
        raise ConfigurationError(
            "serve.adapters: every served version must have a LoRA adapter to share one base; "
            "a fully fine-tuned version can only be served alone"
        )
    ((name, artifacts),) = versions.items()
    merged = AutoModelForCausalLM.from_pretrained(
        str(artifacts["model"]), dtype=dtype, use_safetensors=True
    )
    return merged.eval(), {name: None}


class PromptContext:
    """A request's entity as the context line the model was trained with: its latest
    features from the online store, placed by ``examples.with_context``. An id the store
    does not know, or none, gets every feature ``unknown``, which is what training showed
    for a text with no history (never an error)."""

    def __init__(self, lookup: FeatureLookup) -> None:
        self.lookup = lookup
        self.key = lookup.key
        self._unknown: dict[str, Any] = dict.fromkeys(lookup.repo.spec.features)

    def __call__(self, entity: str | None) -> EntityContext:
        found = self.lookup([entity]) if entity is not None else {}
        features = found.get(entity, self._unknown) if entity is not None else self._unknown
        return EntityContext(context_status(entity, found), partial(with_context, context=features))


def prompt_context(recipe: Recipe) -> PromptContext | None:
    """The recipe's online store for a model trained with ``features:``; without a built
    store the log says once that requests are answered without the line."""
    if recipe.features is None:
        return None
    lookup = serving_lookup(recipe)
    if lookup is None:
        logger.warning(
            "the model was trained with a %s context line but there is no feature store at "
            "%s: every request is answered without it (run prepare, or mount the store)",
            recipe.features.entity,
            serving_repo(recipe),
        )
        return None
    logger.info("context line by request key %r from %s", lookup.key, lookup.repo.directory)
    return PromptContext(lookup)


class PromptSettings(Protocol):
    """A generative task's registered prompt section (``lm.json``), as serving reads it."""

    def prompt_words(self) -> list[str]: ...

    def task_system_prompt(self) -> str | None: ...


def load_generator(
    recipe: Recipe,
    model_uri: str,
    tracking_uri: str | None,
    settings: type[BaseModel] = LanguageTask,
) -> tuple[ServedLM, Any]:
    """The served model for ``model_uri`` plus ``recipe.serve.adapters``, ready to decode,
    and the version's prompt section read as ``settings`` (a ``PromptSettings``)."""
    from medops.model.causal_lm import load_tokenizer

    uris = {recipe.serve.model_name: model_uri, **recipe.serve.adapters}
    # every version checked (no pickle or code, digests as registered) before it is read
    versions = {
        name: fetch_checked(uri, tracking_uri, TASK.pyfunc_path().name)
        for name, uri in uris.items()
    }
    primary = versions[recipe.serve.model_name]
    lm = settings.model_validate(json.loads(primary["lm"].read_text(encoding="utf-8")))
    # only the extraction prompt carries a context line (the instruct task trains without)
    context = prompt_context(recipe) if isinstance(lm, LanguageTask) else None
    prompt = typing.cast(PromptSettings, lm)
    # the prompt's own words are not PHI ("Answer with JSON only" must not become
    # "Answer with [NAME] only"): the guard keeps them as it keeps drug and class names
    guard = load_guard(recipe, primary, vocabulary(prompt.prompt_words()))
    dtype = serving_dtype(recipe.serve.dtype)
    model, names = _load_weights(recipe, versions, dtype)
    tokenizer = load_tokenizer(str(primary["model"]))
    logger.info("serving %s (%s)", ", ".join(names), str(dtype).removeprefix("torch."))
    served = ServedLM(
        model,
        tokenizer,
        names,
        guard,
        recipe.serve.limits,
        recipe.serve.batching,
        system_prompt=prompt.task_system_prompt(),
        recorder=_recorder(recipe, uris),
        context=context,
    )
    return served, lm


def _recorder(recipe: Recipe, uris: dict[str, str]) -> Recorder | None:
    """``serve.review_queue``: answered chats go to the feedback store's review queue."""
    queue = recipe.serve.review_queue
    if not queue.enabled:
        return None
    store = FeedbackStore(store_url(recipe))
    retention = timedelta(days=queue.retention_days)
    logger.info("review queue on: answered chats are kept %d days", queue.retention_days)

    def record(name: str, turns: list[dict[str, str]], answer: str) -> None:
        store.enqueue(name, uris[name], turns, answer, retention)

    return record


class ExtractorPredictor(PyfuncPredictor):
    """v1/v2: de-identified text in; the answer, whether it is JSON, and each field out."""

    settings: type[BaseModel] = LanguageTask  # the registered lm.json section

    def __init__(self, recipe: Recipe, model_uri: str, tracking_uri: str | None = None) -> None:
        super().__init__(recipe, model_uri, tracking_uri)
        self.generator: ServedLM | None = None
        self.lm: Any = None

    @property
    def fields(self) -> list[str]:
        return [f.name for f in self.lm.fields] if self.lm else []

    def load(self) -> bool:
        self.generator, self.lm = load_generator(
            self.recipe, self.model_uri, self.tracking_uri, self.settings
        )
        self.ready = True
        return self.ready

    def messages(self, text: str) -> list[dict[str, str]]:
        """The conversation a v1/v2 text becomes: as evaluation prompted it."""
        return prompt_messages(text, self.lm)

    def context_key(self) -> str | None:
        """The key of the context line the model was trained with, if any."""
        return self.generator.context_key if self.generator is not None else None

    async def answer(self, text: str, context: EntityContext | None = None) -> str:
        if self.generator is None or self.lm is None:
            raise RuntimeError("answering before load(): no model is loaded")
        prompt = await self.generator.chat_prompt(self.name, self.messages(text), context)
        params = GenerationParams(
            max_tokens=min(self.lm.max_new_tokens, self.recipe.serve.limits.max_tokens)
        )
        async for item in self.generator.stream(self.name, prompt, params):
            if isinstance(item, Finished):
                return item.text
        raise RuntimeError("generation ended without a result")

    async def predict(self, payload: Batch, headers: dict[str, str] | None = None) -> Scored:
        self.check_limits(payload)
        if self.generator is None:
            raise RuntimeError("answering before load(): no model is loaded")
        entities = payload.entities or (None,) * len(payload.texts)
        contexts = await asyncio.gather(*(self.generator.context(e) for e in entities))
        answers = await asyncio.gather(
            *(self.answer(t, c) for t, c in zip(payload.texts, contexts, strict=True))
        )
        rows = []
        for answer, context in zip(answers, contexts, strict=True):
            parsed = parse_answer(answer)
            row: dict[str, Any] = {"answer": answer, "json_valid": parsed is not None}
            row.update({name: (parsed or {}).get(name, "") for name in self.fields})
            if context is not None:  # said in the answer: what the model knew of the entity
                row["context"] = context.status
            rows.append(row)
        said = ["context"] if self.generator.context_key is not None else []
        return Scored(payload, pd.DataFrame(rows, columns=[*REQUIRED, *self.fields, *said]))

    def encode(self, result: Scored) -> dict | InferResponse:
        frame = result.frame
        if result.batch.protocol == "v1":
            return {
                "predictions": [
                    {
                        "answer": str(row["answer"]),
                        "json_valid": bool(row["json_valid"]),
                        "fields": {name: str(row[name]) for name in self.fields},
                        **({"context": str(row["context"])} if "context" in frame else {}),
                    }
                    for _, row in frame.iterrows()
                ]
            }
        n = len(frame)
        outputs = [
            InferOutput("answer", [n], "BYTES", frame["answer"].astype(str).to_numpy(np.object_)),
            InferOutput("json_valid", [n], "BOOL", frame["json_valid"].to_numpy(bool)),
        ]
        outputs += [
            InferOutput(name, [n], "BYTES", frame[name].astype(str).to_numpy(np.object_))
            for name in self.fields
        ]
        if "context" in frame:
            outputs.append(v2.context_output(frame["context"].astype(str).tolist()))
        request_id = result.batch.request_id or str(uuid.uuid4())
        return InferResponse(request_id, self.name, outputs)

    def get_output_types(self) -> list[dict]:
        return [
            {"name": "answer", "datatype": "BYTES", "shape": [-1]},
            {"name": "json_valid", "datatype": "BOOL", "shape": [-1]},
            *({"name": name, "datatype": "BYTES", "shape": [-1]} for name in self.fields),
        ]
