"""The KServe model every task serves through: a registered MLflow pyfunc, v1 and v2.

Protocol code only: requests are decoded by ``v1``/``v2`` in ``preprocess``; ``predict``
runs the pyfunc on plain texts (``DataFrame({"text": [...]})``); a task's predictor
(``medops.tasks.<task>.serving``) checks the pyfunc's columns at load and encodes them
back in ``postprocess``.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from typing import Any, Literal

import mlflow
import pandas as pd
from kserve import Model
from kserve.errors import InferenceError
from kserve.protocol.infer_type import InferRequest, InferResponse
from mlflow.exceptions import MlflowException

from medops.errors import MissingInputError
from medops.serve import v1, v2

# a child of kserve's logger, so lines share its handlers and format
logger = logging.getLogger("kserve.medops")

_REGISTERED = re.compile(r"models:/([^/@]+)(?:@([^/]+)|/(\d+))")

# a fixed, record-free text used once at load to check the contract and learn the classes
PROBE_TEXT = "Readiness probe: no patient text."


@dataclass(frozen=True)
class Batch:
    """Decoded request: the texts plus what the encoder needs to answer in kind."""

    protocol: Literal["v1", "v2"]
    texts: list[str]
    request_id: str | None = None


@dataclass(frozen=True)
class Scored:
    batch: Batch
    frame: pd.DataFrame  # the pyfunc's output, one row per text


# how mlflow 3.17 says a name, alias or version is not registered (a missing alias is
# INVALID_PARAMETER_VALUE, a missing version RESOURCE_DOES_NOT_EXIST)
_NOT_FOUND = frozenset({"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"})


class MissingModelError(MissingInputError):
    """The registered model, alias or version a ``models:/`` URI names does not exist."""


def fetch_model(model_uri: str, tracking_uri: str | None) -> str:
    """Local path of ``model_uri``, resolved against ``tracking_uri`` (no global MLflow state).

    mlflow 3.17 resolves ``models:/`` names through the process-wide registry URI even when
    ``download_artifacts`` is given one, so ``models:/<name>@<alias>`` and
    ``models:/<name>/<version>`` are resolved here with an explicit client first.
    """
    match = _REGISTERED.fullmatch(model_uri)
    if tracking_uri and match:
        client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        name, alias, version = match.groups()
        model_uri = _download_uri(client, name, alias, version)
    return mlflow.artifacts.download_artifacts(
        artifact_uri=model_uri, tracking_uri=tracking_uri, registry_uri=tracking_uri
    )


def _download_uri(
    client: mlflow.MlflowClient, name: str, alias: str | None, version: str | None
) -> str:
    """Where a registered version's files are; a missing alias or version is the user's to
    fix (after a demo whose gate refused to promote, the alias does not exist yet)."""
    try:
        if alias:
            version = client.get_model_version_by_alias(name, alias).version
        return client.get_model_version_download_uri(name, str(version))
    except MlflowException as error:
        if error.error_code not in _NOT_FOUND:
            raise
        raise MissingModelError(_missing(client, name, alias, version)) from None


def _missing(client: mlflow.MlflowClient, name: str, alias: str | None, version: str | None) -> str:
    wanted = f"alias {alias!r}" if alias else f"version {version}"
    versions = _versions(client, name)
    if not versions:
        return (
            f"registered model {name!r} has no {wanted} and no versions at all: run the "
            "pipeline to register one (medops run / medops demo)"
        )
    why = " (an alias is set only when the evaluation gate promotes a version)" if alias else ""
    return (
        f"registered model {name!r} has no {wanted}{why}; its versions are "
        f"{', '.join(versions)}. To serve one of them: --model-uri models:/{name}/{versions[-1]}"
    )


def _versions(client: mlflow.MlflowClient, name: str) -> list[str]:
    """The registered versions of ``name``, oldest first (none when the model is unknown)."""
    quoted = name.replace("\\", "\\\\").replace("'", "\\'")
    try:
        found = client.search_model_versions(f"name='{quoted}'")
    except MlflowException:
        return []
    return sorted((str(v.version) for v in found), key=int)


class PyfuncPredictor(Model):
    """Serves ``models:/<name>@<alias>`` (or any MLflow model URI) for one task."""

    def __init__(self, name: str, model_uri: str, tracking_uri: str | None = None) -> None:
        super().__init__(name)
        self.model_uri = model_uri
        self.tracking_uri = tracking_uri
        self._pyfunc: Any = None

    def load(self) -> bool:
        """Load the pyfunc, then score one probe text so a broken contract fails at startup
        rather than on the first request."""
        local_path = fetch_model(self.model_uri, self.tracking_uri)
        self._pyfunc = mlflow.pyfunc.load_model(local_path)
        self.check(self._pyfunc.predict(pd.DataFrame({"text": [PROBE_TEXT]})))
        logger.info("loaded %s", self.model_uri)
        self.ready = True
        return self.ready

    def start(self) -> None:
        """kserve's ``start`` marks a model ready unconditionally; only ``load`` may, so
        readiness keeps saying whether the model is loaded."""

    def check(self, frame: pd.DataFrame) -> None:
        """Raise ConfigurationError when the pyfunc's output is not this task's."""
        raise NotImplementedError

    def encode(self, result: Scored) -> dict | InferResponse:
        raise NotImplementedError

    def validate(self, payload: Any) -> Any:
        """The protocol codecs validate in ``preprocess``; kserve's dict checks do not apply."""
        return payload

    async def preprocess(
        self, payload: dict | InferRequest, headers: dict[str, str] | None = None
    ) -> Batch:
        if isinstance(payload, InferRequest):
            return Batch("v2", v2.decode(payload), payload.id)
        return Batch("v1", v1.decode(payload))

    async def predict(self, payload: Batch, headers: dict[str, str] | None = None) -> Scored:
        """Run the pyfunc off the event loop so health checks answer during inference."""
        try:
            frame = await asyncio.to_thread(
                self._pyfunc.predict, pd.DataFrame({"text": payload.texts})
            )
        except Exception as error:
            # the original message may quote inputs: log and return only its type
            logger.error("prediction failed: %s", type(error).__name__)
            raise InferenceError(f"model prediction failed ({type(error).__name__})") from None
        return Scored(payload, frame)

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
