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
        if alias:
            version = client.get_model_version_by_alias(name, alias).version
        model_uri = client.get_model_version_download_uri(name, version)
    return mlflow.artifacts.download_artifacts(
        artifact_uri=model_uri, tracking_uri=tracking_uri, registry_uri=tracking_uri
    )


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

    async def postprocess(
        self,
        result: Scored,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> dict | InferResponse:
        return self.encode(result)

    def get_input_types(self) -> list[dict]:
        return [{"name": v2.INPUT, "datatype": "BYTES", "shape": [-1]}]
