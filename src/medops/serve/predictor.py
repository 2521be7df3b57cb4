"""The KServe model: a registered MLflow pyfunc behind the v1 and v2 protocols.

Model code only: requests are decoded by ``v1``/``v2`` in ``preprocess`` and encoded back
in ``postprocess``; ``predict`` sees plain texts and returns labels and probabilities.
The pyfunc contract: ``predict(DataFrame({"text": [...]}))`` returns a ``label`` column and
one probability column per class.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from typing import Any, Literal

import mlflow
import numpy as np
import pandas as pd
from kserve import Model
from kserve.errors import InferenceError
from kserve.protocol.infer_type import InferRequest, InferResponse

from medops.errors import ConfigurationError
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
    labels: list[str]
    probabilities: np.ndarray  # [n, k], columns in ConditionPredictor.classes order


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


class ConditionPredictor(Model):
    """Serves ``models:/<name>@<alias>`` (or any MLflow model URI) as a condition classifier."""

    def __init__(self, name: str, model_uri: str, tracking_uri: str | None = None) -> None:
        super().__init__(name)
        self.model_uri = model_uri
        self.tracking_uri = tracking_uri
        self.classes: list[str] = []
        self._pyfunc: Any = None

    def load(self) -> bool:
        """Load the pyfunc, then score one probe text so a broken contract fails at startup
        rather than on the first request."""
        local_path = fetch_model(self.model_uri, self.tracking_uri)
        self._pyfunc = mlflow.pyfunc.load_model(local_path)
        frame = self._pyfunc.predict(pd.DataFrame({"text": [PROBE_TEXT]}))
        if "label" not in frame.columns or len(frame.columns) < 3:
            raise ConfigurationError(
                f"{self.model_uri}: predict must return a 'label' column and one probability "
                f"column per class (at least two); got columns {list(frame.columns)}"
            )
        self.classes = [str(column) for column in frame.columns if column != "label"]
        logger.info("loaded %s with classes %s", self.model_uri, self.classes)
        self.ready = True
        return self.ready

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
            labels = [str(label) for label in frame["label"]]
            probabilities = frame[self.classes].to_numpy(dtype=np.float32)
        except Exception as error:
            # the original message may quote inputs: log and return only its type
            logger.error("prediction failed: %s", type(error).__name__)
            raise InferenceError(f"model prediction failed ({type(error).__name__})") from None
        return Scored(payload, labels, probabilities)

    async def postprocess(
        self,
        result: Scored,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> dict | InferResponse:
        if result.batch.protocol == "v2":
            return v2.encode(
                result.labels,
                self.classes,
                result.probabilities,
                model_name=self.name,
                request_id=result.batch.request_id,
            )
        return v1.encode(result.labels, self.classes, result.probabilities)

    def get_input_types(self) -> list[dict]:
        return [{"name": v2.INPUT, "datatype": "BYTES", "shape": [-1]}]

    def get_output_types(self) -> list[dict]:
        """v2 metadata has no room for names: the class count is in the shapes, the names
        come with every response in the ``classes`` output."""
        k = len(self.classes)
        return [
            {"name": "condition", "datatype": "BYTES", "shape": [-1]},
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, k]},
            {"name": "classes", "datatype": "BYTES", "shape": [k]},
        ]
