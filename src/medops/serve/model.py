"""The KServe model every task serves through: a registered MLflow pyfunc, v1 and v2.

Protocol code only: requests are decoded by ``v1``/``v2`` in ``preprocess``; ``predict``
checks the recipe's limits, then queues the texts for the model thread, which scores
concurrent requests in one pyfunc call (dynamic batching, ``medops.serve.batcher``) after
the guard has de-identified them as training did. A task's predictor
(``medops.tasks.<task>.serving``) checks the pyfunc's columns at load and encodes them
back in ``postprocess``.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import mlflow
import numpy as np
import pandas as pd
from kserve import Model
from kserve.errors import InferenceError
from kserve.protocol.infer_type import InferRequest, InferResponse

from medops.model.encoder import CHARS_PER_TOKEN
from medops.model.registered import fetch_model, registered_artifacts
from medops.recipe import Recipe
from medops.serve import v1, v2
from medops.serve.batcher import BatchQueue, Ticket, start_worker
from medops.serve.generation import Refused
from medops.serve.guard import Guard

# a child of kserve's logger, so lines share its handlers and format
logger = logging.getLogger("kserve.medops")

# a fixed, record-free text used once at load to check the contract and learn the classes
PROBE_TEXT = "Readiness probe: no patient text."
VOCABULARY = "deid_vocabulary"  # the registered artifact of words prepare kept as non-PHI


@dataclass(frozen=True)
class Batch:
    """Decoded request: the texts plus what the encoder needs to answer in kind."""

    protocol: Literal["v1", "v2"]
    texts: list[str]
    request_id: str | None = None
    entities: tuple[str | None, ...] = ()  # per text, for a model that reads context


class ContextSource(Protocol):
    """Online features by entity id (``medops.features.online.FeatureLookup``), under the
    request key ``key`` that names the entity (``drug``, ``patient_key``)."""

    key: str

    def __call__(self, entity_ids: Sequence[str]) -> dict[str, dict[str, Any]]: ...


Queued = tuple[list[str], tuple[str | None, ...]]  # a request's texts and their entity ids


@dataclass(frozen=True)
class Scored:
    batch: Batch
    frame: pd.DataFrame  # the pyfunc's output, one row per text


def load_guard(recipe: Recipe, artifacts: dict[str, Path], known: Iterable[str] = ()) -> Guard:
    """The recipe's PHI guard, keeping the registered version's non-PHI vocabulary (drug and
    class names) plus ``known``, so served text is de-identified exactly as training was."""
    vocabulary = set(known)
    if VOCABULARY in artifacts:
        vocabulary |= set(json.loads(artifacts[VOCABULARY].read_text(encoding="utf-8")))
    serve = recipe.serve
    return Guard(recipe.deid, frozenset(vocabulary), serve.deidentify_input, serve.redact_output)


def context_status(entity: str | None, found: dict[str, dict[str, Any]]) -> str:
    """``found``: the store knew something of the entity; ``unknown id``: it knew nothing
    (scored as no history, not an error); ``no id``: the instance named none."""
    if entity is None:
        return "no id"
    known = found.get(entity) or {}
    return "found" if any(value is not None for value in known.values()) else "unknown id"


class PyfuncPredictor(Model):
    """Serves ``models:/<name>@<alias>`` (or any MLflow model URI) for one task."""

    def __init__(self, recipe: Recipe, model_uri: str, tracking_uri: str | None = None) -> None:
        super().__init__(recipe.serve.model_name)
        self.recipe = recipe
        self.model_uri = model_uri
        self.tracking_uri = tracking_uri
        self._pyfunc: Any = None
        self._guard: Guard | None = None
        self._queue: BatchQueue[Queued] | None = None
        # set by a task whose model reads context (features looked up per request)
        self.context: ContextSource | None = None

    def load(self) -> bool:
        """Load the pyfunc, then score one probe text so a broken contract fails at startup
        rather than on the first request; then start the model thread.

        MLflow runs the code registered with the version: the default for a plug-in task
        only. medops' own predictors override this and build their model from the
        version's data (``medops.tasks.<task>.serving``)."""
        local_path = Path(fetch_model(self.model_uri, self.tracking_uri))
        self.attach(mlflow.pyfunc.load_model(str(local_path)), registered_artifacts(local_path))
        logger.info("loaded %s", self.model_uri)
        return self.ready

    def attach(self, pyfunc: Any, artifacts: dict[str, Path]) -> None:
        """Serve a loaded pyfunc (anything with ``predict(DataFrame)``) with its registered
        version's artifacts: check its contract, build the guard, start the model thread."""
        self.check(pyfunc.predict(pd.DataFrame({"text": [PROBE_TEXT]})))
        self._pyfunc = pyfunc
        self._guard = load_guard(self.recipe, artifacts)
        self.stop()  # a reload replaces the model thread
        serve = self.recipe.serve
        self._queue = BatchQueue(
            "predict",
            serve.limits.max_queue,
            serve.batching.max_batch_size,
            serve.batching.max_wait_ms,
        )
        start_worker(self._queue, self._score)
        self.ready = True

    def start(self) -> None:
        """kserve's ``start`` marks a model ready unconditionally; only ``load`` may, so
        readiness keeps saying whether the model is loaded."""

    def stop(self) -> None:
        """Not ready, and the model thread ends once its current batch is done."""
        self.ready = False
        if self._queue is not None:
            self._queue.close()
            self._queue = None

    def check(self, frame: pd.DataFrame) -> None:
        """Raise ConfigurationError when the pyfunc's output is not this task's."""
        raise NotImplementedError

    def encode(self, result: Scored) -> dict | InferResponse:
        raise NotImplementedError

    def validate(self, payload: Any) -> Any:
        """The protocol codecs validate in ``preprocess``; kserve's dict checks do not apply."""
        return payload

    def check_limits(self, batch: Batch) -> None:
        """Refuse (422) a request over ``serve.limits`` before any text reaches a tokenizer."""
        limits = self.recipe.serve.limits
        if len(batch.texts) > limits.max_instances:
            raise Refused(
                422,
                f"{len(batch.texts)} instances; at most {limits.max_instances} per request "
                "(serve.limits.max_instances): split the request",
                "invalid_request",
                "instances",
            )
        for index, text in enumerate(batch.texts):
            if len(text) > limits.max_chars:
                raise Refused(
                    422,
                    f"instance {index} has {len(text)} characters; at most {limits.max_chars} "
                    "are accepted (serve.limits.max_chars): shorten or split it",
                    "invalid_request",
                    "instances",
                )

    def context_key(self) -> str | None:
        """The request key that names an entity (``drug``), for a model that reads context."""
        return self.context.key if self.context is not None else None

    async def preprocess(
        self, payload: dict | InferRequest, headers: dict[str, str] | None = None
    ) -> Batch:
        key = self.context_key()
        if isinstance(payload, InferRequest):
            texts = v2.decode(payload, key)  # first: it checks the inputs' names
            if key is None:
                return Batch("v2", texts, payload.id)
            return Batch("v2", texts, payload.id, tuple(v2.entities(payload, key)))
        texts = v1.decode(payload)
        if key is None:
            return Batch("v1", texts)
        return Batch("v1", texts, entities=tuple(v1.entities(payload, key)))

    async def predict(self, payload: Batch, headers: dict[str, str] | None = None) -> Scored:
        """Queue the texts for the model thread (429 when the queue is full); the event loop
        keeps answering health checks meanwhile, and a client that leaves frees its place."""
        self.check_limits(payload)
        if self._queue is None:
            raise InferenceError(f"model {self.name!r} is not loaded")
        entities = payload.entities or (None,) * len(payload.texts)
        ticket = self._queue.put((payload.texts, entities), size=len(payload.texts))
        try:
            frame = await ticket.result()
        except RuntimeError as error:  # set by the model thread: a type-only message
            raise InferenceError(str(error)) from None
        return Scored(payload, frame)

    def _score(self, batch: list[Ticket[Queued]]) -> None:
        """One pyfunc call for every queued request of the batch. When it fails, each
        request is scored alone, so one unscorable text fails only its own request."""
        try:
            frames = self._run([ticket.item for ticket in batch])
        except Exception as error:
            if len(batch) == 1:
                self._fail(batch[0], error)
                return
            for ticket in batch:
                self._score([ticket])
            return
        for ticket, frame in zip(batch, frames, strict=True):
            ticket.future.set_result(frame)

    def _run(self, requests: list[Queued]) -> list[pd.DataFrame]:
        if self._guard is None:
            raise RuntimeError("scoring before load(): the guard is not set")
        # the model reads at most model.max_length tokens: de-identifying the rest of a long
        # text would cost seconds of CPU per request for nothing
        seen = CHARS_PER_TOKEN * self.recipe.model.max_length
        texts = self._guard.clean([text[:seen] for texts, _ in requests for text in texts])
        inputs = pd.DataFrame({"text": texts})
        found: dict[str, dict[str, Any]] = {}
        if self.context is not None:
            ids = [entity for _, entities in requests for entity in entities]
            found = self.context([entity for entity in ids if entity is not None])
            inputs["context"] = [found.get(entity) if entity else None for entity in ids]
        frame = self._pyfunc.predict(inputs)
        if self.context is not None:  # said in the answer: what the model knew of the entity
            frame["context"] = [context_status(entity, found) for entity in ids]
        bounds = np.cumsum([0, *(len(texts) for texts, _ in requests)])
        return [
            frame.iloc[start:end].reset_index(drop=True)
            for start, end in itertools.pairwise(bounds)
        ]

    @staticmethod
    def _fail(ticket: Ticket[Queued], error: Exception) -> None:
        # the original message may quote inputs: log and answer only its type
        logger.error("prediction failed: %s", type(error).__name__)
        failure = RuntimeError(f"model prediction failed ({type(error).__name__})")
        ticket.future.set_exception(failure)

    async def explain(self, payload: Any, headers: dict[str, str] | None = None) -> dict:
        """No task has an explainer: a 501 that says so (kserve's names a missing host)."""
        raise NotImplementedError(f"model {self.name!r} has no explainer; POST :predict instead")

    async def postprocess(
        self,
        result: Scored,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> dict | InferResponse:
        return self.encode(result)

    def get_input_types(self) -> list[dict]:
        return [{"name": v2.INPUT, "datatype": "BYTES", "shape": [-1]}]
