"""Serving registered instruct models: the OpenAI chat routes, plus v1/v2 text -> answer.

Loaded as the extraction task's versions are (LoRA adapter on the shared base, weights from
safetensors only); the version's ``lm.json`` supplies the system prompt the server puts
first in every conversation, so callers get the template the model was trained with.
"""

from __future__ import annotations

import asyncio
import uuid

import numpy as np
import pandas as pd
from kserve.protocol.infer_type import InferOutput, InferResponse
from pydantic import BaseModel

from medops.serve.model import Batch, Scored
from medops.tasks.causal_lm.serving import ExtractorPredictor
from medops.tasks.instruct.recipe import ChatTask


class ChatPredictor(ExtractorPredictor):
    """v1/v2: one user turn per text in, the model's answer out (the task's system prompt
    and the guards apply as on the OpenAI route)."""

    settings: type[BaseModel] = ChatTask

    @property
    def fields(self) -> list[str]:
        return []

    def messages(self, text: str) -> list[dict[str, str]]:
        return [{"role": "user", "content": text}]

    async def predict(self, payload: Batch, headers: dict[str, str] | None = None) -> Scored:
        self.check_limits(payload)
        answers = await asyncio.gather(*(self.answer(t) for t in payload.texts))
        return Scored(payload, pd.DataFrame({"answer": answers}))

    def encode(self, result: Scored) -> dict | InferResponse:
        answers = result.frame["answer"].astype(str)
        if result.batch.protocol == "v1":
            return {"predictions": [{"answer": answer} for answer in answers]}
        output = InferOutput("answer", [len(answers)], "BYTES", answers.to_numpy(np.object_))
        return InferResponse(result.batch.request_id or str(uuid.uuid4()), self.name, [output])

    def get_output_types(self) -> list[dict]:
        return [{"name": "answer", "datatype": "BYTES", "shape": [-1]}]
