"""KServe v2 (Open Inference Protocol) codec.

Request: one BYTES input named ``text`` with shape ``[n]``; for a model that reads context
features, optionally a second BYTES input ``[n]`` named after the entity key (``drug``,
``patient_key``) holding each text's entity id (``""``: none).
Response: ``condition`` (BYTES ``[n]``, the predicted class), ``probabilities``
(FP32 ``[n, k]``) and ``classes`` (BYTES ``[k]``, the column order of ``probabilities``);
with context, ``context`` (BYTES ``[n]``: ``found``, ``unknown id`` or ``no id``).
Class names travel as an output rather than in ``parameters`` because v2 parameters only
hold scalars (str/bool/int) and an output also survives gRPC unchanged.
Errors never repeat submitted text, input names or values.

``parse_bytes`` reads the bodies kserve's REST route leaves as bytes: the binary tensor
extension and JSON sent without a JSON Content-Type (as ``tritonclient.http`` sends it).
kserve's own reader answers 500s that quote the request (its UTF-8 error repeats the
element), so it is not used.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeGuard

import numpy as np
import orjson
from kserve.constants.constants import INFERENCE_CONTENT_LENGTH_HEADER
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferInput, InferOutput, InferRequest, InferResponse
from kserve.protocol.rest.v2_datamodels import InferenceRequest
from kserve.utils.numpy_codec import to_np_dtype
from pydantic import ValidationError

from medops.serve.v1 import EXAMPLE_TEXT, is_blank

INPUT = "text"
EXPECTED = "expected one BYTES input named 'text' with shape [n] holding n non-empty strings"
HEADER = "Inference-Header-Content-Length"
BINARY = (
    f"a binary v2 request is a JSON header of {HEADER} bytes, then each input's "
    "parameters.binary_data_size bytes"
)
EXAMPLE = {"inputs": [{"name": INPUT, "shape": [1], "datatype": "BYTES", "data": [EXAMPLE_TEXT]}]}


def decode(request: InferRequest, key: str | None = None) -> list[str]:
    """Return the texts of a v2 request, or raise InvalidInput. With ``key`` (a model that
    reads context), a second input of that name may carry entity ids (``entities``)."""
    allowed = {INPUT} if key is None else {INPUT, key}
    names = [tensor.name for tensor in request.inputs]
    if len(names) == 1 and INPUT not in names:
        raise InvalidInput(_expected(key, "its input has another name"))
    if INPUT not in names or not set(names) <= allowed or len(set(names)) != len(names):
        raise InvalidInput(_expected(key, f"the request has {len(names)} inputs"))
    values = _values(_input(request, INPUT), INPUT, _expected(key, ""))
    return [_text(value, index) for index, value in enumerate(values)]


def entities(request: InferRequest, key: str) -> list[str | None]:
    """Each text's entity id from the input named ``key`` (None where it is ``""``, or for
    every text when the input is absent); ``decode(request, key)`` has checked the names."""
    texts = _input(request, INPUT).shape[0]
    tensor = next((t for t in request.inputs if t.name == key), None)
    if tensor is None:
        return [None] * texts
    expected = _expected(key, "")
    values = _values(tensor, key, expected)
    if len(values) != texts:
        raise InvalidInput(f"{expected}input {key!r} must have one element per text")
    ids = []
    for index, value in enumerate(values):
        entity = _string(value, index, key, expected).strip()
        ids.append(entity or None)
    return ids


def _expected(key: str | None, problem: str) -> str:
    if key is None:
        return f"{EXPECTED}; {problem}" if problem else f"{EXPECTED}; "
    extra = (
        f"{EXPECTED}, and optionally a BYTES input {key!r} with shape [n]: each text's entity "
        'id ("" for none)'
    )
    return f"{extra}; {problem}" if problem else f"{extra}; "


def _input(request: InferRequest, name: str) -> InferInput:
    return next(tensor for tensor in request.inputs if tensor.name == name)


def _values(tensor: InferInput, name: str, expected: str) -> list[Any]:
    """A BYTES ``[n]`` input's elements (n >= 1)."""
    if tensor.datatype != "BYTES":
        raise InvalidInput(f"{expected}input {name!r} has another datatype")
    if len(tensor.shape) != 1 or tensor.shape[0] < 1:
        raise InvalidInput(f"{expected}input {name!r} must have shape [n] with n >= 1")
    try:
        values: list[Any] = tensor.as_numpy().tolist()
    except ValueError:  # data length does not match the shape
        raise InvalidInput(f"{expected}the data of {name!r} does not match shape [n]") from None
    return values


def _string(value: object, index: int, name: str, expected: str) -> str:
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(f"{expected}input {name!r}: element {index} is not UTF-8") from None
    if not isinstance(value, str):
        raise InvalidInput(f"{expected}input {name!r}: element {index} is not a string")
    return value


def _text(value: object, index: int) -> str:
    value = _string(value, index, INPUT, f"{EXPECTED}; ")
    if is_blank(value):
        raise InvalidInput(
            f"{EXPECTED}; input 'text': element {index} is empty (only whitespace or "
            "invisible characters)"
        )
    return value


def describe(errors: Iterable[Mapping[str, Any]]) -> str:
    """Where and what of pydantic/FastAPI validation errors, without their ``input``."""
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)


def parse_bytes(body: bytes, headers: Mapping[str, str], model_name: str) -> InferRequest:
    """A v2 request body left as bytes: binary when it has the header, else JSON."""
    length = headers.get(INFERENCE_CONTENT_LENGTH_HEADER)
    if length is None:
        return _from_json(body, model_name)
    return _from_binary(body, _header_length(length, len(body)), model_name)


def _from_json(body: bytes, model_name: str) -> InferRequest:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidInput(
            f"the body is not JSON; a binary v2 request needs the {HEADER} header"
        ) from None
    try:
        request = InferenceRequest.model_validate(document)
    except ValidationError as error:
        raise InvalidInput(f"invalid v2 request: {describe(error.errors())}") from None
    return InferRequest.from_inference_request(request, model_name)


def _header_length(value: str, size: int) -> int:
    if not (value.isascii() and value.isdigit() and len(value) <= 15):
        raise InvalidInput(f"{BINARY}; the {HEADER} header is not a whole number of bytes")
    length = int(value)
    if not 0 < length <= size:
        raise InvalidInput(f"{BINARY}; the {HEADER} header is 0 or longer than the body")
    return length


def _from_binary(body: bytes, length: int, model_name: str) -> InferRequest:
    header = _json_header(body[:length])
    inputs = header.get("inputs")
    if not isinstance(inputs, list):
        raise InvalidInput(f"{BINARY}; the JSON header has no 'inputs' list")
    tensors, offset = [], length
    for index, spec in enumerate(inputs):
        tensor, offset = _binary_input(spec, index, body, offset)
        tensors.append(tensor)
    if offset != len(body):
        raise InvalidInput(f"{BINARY}; the body is longer than the header and inputs declare")
    request_id, parameters = header.get("id"), header.get("parameters")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidInput(f"{BINARY}; 'id' must be a string")
    if parameters is not None and not isinstance(parameters, dict):
        raise InvalidInput(f"{BINARY}; 'parameters' must be an object")
    return InferRequest(model_name, tensors, request_id=request_id, parameters=parameters)


def _json_header(raw: bytes) -> dict[str, Any]:
    try:
        header = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidInput(f"{BINARY}; the first {HEADER} bytes are not JSON") from None
    if not isinstance(header, dict):
        raise InvalidInput(f"{BINARY}; the JSON header is not an object")
    return header


def _binary_input(spec: Any, index: int, body: bytes, offset: int) -> tuple[InferInput, int]:
    """One header input and the offset after its bytes; errors name ``inputs[i].field``."""
    where = f"{BINARY}; inputs[{index}]"
    if not isinstance(spec, dict):
        raise InvalidInput(f"{where} is not an object")
    name, datatype, shape = spec.get("name"), spec.get("datatype"), spec.get("shape")
    parameters = spec.get("parameters") or {}
    if not isinstance(name, str):
        raise InvalidInput(f"{where}.name is missing or not a string")
    if not isinstance(datatype, str) or to_np_dtype(datatype.upper()) is None:
        raise InvalidInput(f"{where}.datatype is missing or not a v2 datatype")
    if not _is_shape(shape):
        raise InvalidInput(f"{where}.shape must be a list of non-negative integers")
    if not isinstance(parameters, dict):
        raise InvalidInput(f"{where}.parameters must be an object")
    if "data" in spec:
        if not isinstance(spec["data"], list):
            raise InvalidInput(f"{where}.data must be a list")
        return InferInput(name, shape, datatype, spec["data"], parameters or None), offset
    size = parameters.get("binary_data_size")
    if not _is_count(size):
        raise InvalidInput(f"{where} has neither 'data' nor parameters.binary_data_size")
    end = offset + size
    if end > len(body):
        raise InvalidInput(f"{where}.parameters.binary_data_size runs past the end of the body")
    values = _binary_values(body[offset:end], datatype.upper(), where)
    rest = {key: value for key, value in parameters.items() if key != "binary_data_size"}
    return InferInput(name, shape, datatype, values, rest or None), end


def _is_count(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_shape(shape: Any) -> bool:
    return isinstance(shape, list) and all(_is_count(size) for size in shape)


def _binary_values(raw: bytes, datatype: str, where: str) -> list[Any]:
    """Elements of one binary tensor, BYTES as undecoded ``bytes`` (``decode`` checks UTF-8)."""
    if datatype == "BYTES":
        return _bytes_elements(raw, where)
    dtype = np.dtype(to_np_dtype(datatype))
    if len(raw) % dtype.itemsize:
        raise InvalidInput(f"{where}: its data is not a whole number of {datatype} values")
    return np.frombuffer(raw, dtype=dtype).tolist()


def _bytes_elements(raw: bytes, where: str) -> list[bytes]:
    """Triton's BYTES layout: each element is a 4-byte little-endian length, then its bytes."""
    values, offset = [], 0
    while offset < len(raw):
        start = offset + 4
        length = struct.unpack_from("<I", raw, offset)[0] if start <= len(raw) else None
        if length is None or start + length > len(raw):
            raise InvalidInput(
                f"{where}: its BYTES data is malformed (each element is a 4-byte "
                "little-endian length, then that many bytes)"
            )
        values.append(raw[start : start + length])
        offset = start + length
    return values


def encode(
    labels: Sequence[str],
    classes: Sequence[str],
    probabilities: np.ndarray,
    *,
    model_name: str,
    request_id: str | None,
    context: Sequence[str] | None = None,
) -> InferResponse:
    """Build the response; outputs are JSON (not binary) so any HTTP client can read them.
    With ``context`` (a model that reads features) a ``context`` output says, per text,
    what the store knew of its entity.

    The v2 response needs an id: the request's when it sent one, else a fresh one.
    """
    n, k = len(labels), len(classes)
    outputs = [
        InferOutput("condition", [n], "BYTES", np.array(labels, dtype=np.object_)),
        InferOutput("probabilities", [n, k], "FP32", np.asarray(probabilities, np.float32)),
        InferOutput("classes", [k], "BYTES", np.array(classes, dtype=np.object_)),
    ]
    if context is not None:
        outputs.append(context_output(context))
    return InferResponse(request_id or str(uuid.uuid4()), model_name, outputs)


def context_output(context: Sequence[str]) -> InferOutput:
    """Per text: ``found``, ``unknown id`` or ``no id`` (``medops.serve.model.context_status``)."""
    return InferOutput("context", [len(context)], "BYTES", np.array(context, dtype=np.object_))
