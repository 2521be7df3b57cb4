"""Serving a registered extraction model: the answer and its parsed fields, over v1 and v2."""

from __future__ import annotations

import uuid

import numpy as np
import pandas as pd
from kserve.protocol.infer_type import InferOutput, InferResponse

from medops.errors import ConfigurationError
from medops.serve.model import PyfuncPredictor, Scored

REQUIRED = ("answer", "json_valid")


class ExtractorPredictor(PyfuncPredictor):
    """The pyfunc answers ``answer``, ``json_valid`` and one string column per field."""

    fields: list[str]

    def check(self, frame: pd.DataFrame) -> None:
        missing = [name for name in REQUIRED if name not in frame.columns]
        if missing:
            raise ConfigurationError(
                f"{self.model_uri}: predict must return columns {list(REQUIRED)} and one per "
                f"target field; got columns {list(frame.columns)}"
            )
        self.fields = [str(c) for c in frame.columns if c not in REQUIRED]

    def encode(self, result: Scored) -> dict | InferResponse:
        frame = result.frame
        if result.batch.protocol == "v1":
            return {
                "predictions": [
                    {
                        "answer": str(row["answer"]),
                        "json_valid": bool(row["json_valid"]),
                        "fields": {name: str(row[name]) for name in self.fields},
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
        request_id = result.batch.request_id or str(uuid.uuid4())
        return InferResponse(request_id, self.name, outputs)

    def get_output_types(self) -> list[dict]:
        return [
            {"name": "answer", "datatype": "BYTES", "shape": [-1]},
            {"name": "json_valid", "datatype": "BOOL", "shape": [-1]},
            *({"name": name, "datatype": "BYTES", "shape": [-1]} for name in self.fields),
        ]
