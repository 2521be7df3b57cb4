"""KServe v2 (Open Inference Protocol) codec.

Request: one BYTES input named ``text`` with shape ``[n]``.
Response: ``condition`` (BYTES ``[n]``, the predicted class), ``probabilities``
(FP32 ``[n, k]``) and ``classes`` (BYTES ``[k]``, the column order of ``probabilities``).
Class names travel as an output rather than in ``parameters`` because v2 parameters only
hold scalars (str/bool/int) and an output also survives gRPC unchanged.
Errors never repeat submitted text, input names or values.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import numpy as np
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

INPUT = "text"
EXPECTED = "expected one BYTES input named 'text' with shape [n] holding n non-empty strings"


def decode(request: InferRequest) -> list[str]:
    """Return the texts of a v2 request, or raise InvalidInput."""
    if len(request.inputs) != 1:
        raise InvalidInput(f"{EXPECTED}; the request has {len(request.inputs)} inputs")
    tensor = request.inputs[0]
    if tensor.name != INPUT:
        raise InvalidInput(f"{EXPECTED}; its input has another name")
    if tensor.datatype != "BYTES":
        raise InvalidInput(f"{EXPECTED}; input 'text' has another datatype")
    if len(tensor.shape) != 1 or tensor.shape[0] < 1:
        raise InvalidInput(f"{EXPECTED}; input 'text' must have shape [n] with n >= 1")
    try:
        values = tensor.as_numpy()
    except ValueError:  # data length does not match the shape
        raise InvalidInput(f"{EXPECTED}; the data does not match shape [n]") from None
    return [_text(value, index) for index, value in enumerate(values.tolist())]


def _text(value: object, index: int) -> str:
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(f"{EXPECTED}; element {index} is not UTF-8") from None
    if not isinstance(value, str):
        raise InvalidInput(f"{EXPECTED}; element {index} is not a string")
    if not value.strip():
        raise InvalidInput(f"{EXPECTED}; element {index} is empty")
    return value


def encode(
    labels: Sequence[str],
    classes: Sequence[str],
    probabilities: np.ndarray,
    *,
    model_name: str,
    request_id: str | None,
) -> InferResponse:
    """Build the response; outputs are JSON (not binary) so any HTTP client can read them.

    The v2 response needs an id: the request's when it sent one, else a fresh one.
    """
    n, k = len(labels), len(classes)
    outputs = [
        InferOutput("condition", [n], "BYTES", np.array(labels, dtype=np.object_)),
        InferOutput("probabilities", [n, k], "FP32", np.asarray(probabilities, np.float32)),
        InferOutput("classes", [k], "BYTES", np.array(classes, dtype=np.object_)),
    ]
    return InferResponse(request_id or str(uuid.uuid4()), model_name, outputs)
