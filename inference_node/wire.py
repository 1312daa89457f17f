"""Generations as KServe v2 tensors, in the convention of Triton's vLLM backend (see proto/README.md).

Pure conversion between the v2 messages and our domain types, shared by the node's servicer and `NodeClient`.
Inputs: `text_input` or (our extension) `messages`, `stream`, `sampling_parameters` (JSON),
`exclude_input_in_output`. Outputs: `text_output`, `num_input_tokens`, `num_output_tokens` (tokens in this
response, as Triton counts them), and our `num_cached_tokens` and `finish_reason` (set on the last response).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, cast, get_args

from inference_node.engine import ChatMessage, FinishReason, GenerationChunk, GenerationRequest
from inference_node.proto.grpc_predict_v2_pb2 import (
    InferTensorContents,
    ModelInferRequest,
    ModelInferResponse,
)
from meshgate.errors import EngineError, InvalidArguments

TEXT_INPUT = "text_input"
MESSAGES = "messages"
STREAM = "stream"
SAMPLING_PARAMETERS = "sampling_parameters"
EXCLUDE_INPUT_IN_OUTPUT = "exclude_input_in_output"
TEXT_OUTPUT = "text_output"
FINISH_REASON = "finish_reason"
NUM_INPUT_TOKENS = "num_input_tokens"
NUM_OUTPUT_TOKENS = "num_output_tokens"
NUM_CACHED_TOKENS = "num_cached_tokens"

# Triton's vLLM backend accepts these flags; meshgate always returns counts and the finish reason.
IGNORED_INPUTS = frozenset({"return_finish_reason", "return_num_input_tokens", "return_num_output_tokens"})
INPUTS: dict[str, str] = {
    TEXT_INPUT: "BYTES",
    MESSAGES: "BYTES",
    STREAM: "BOOL",
    SAMPLING_PARAMETERS: "BYTES",
    EXCLUDE_INPUT_IN_OUTPUT: "BOOL",
}
OUTPUTS: dict[str, str] = {
    TEXT_OUTPUT: "BYTES",
    FINISH_REASON: "BYTES",
    NUM_INPUT_TOKENS: "UINT32",
    NUM_OUTPUT_TOKENS: "UINT32",
    NUM_CACHED_TOKENS: "UINT32",
}
SAMPLING_KEYS = frozenset({"max_tokens", "temperature", "top_p", "seed", "stop"})
MAX_STOP_STRINGS = 16
Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True, slots=True)
class InferInput:
    """A parsed ModelInferRequest: the generation plus how to shape the reply."""

    model: str
    generation: GenerationRequest
    stream: bool | None
    """None when the request did not say (streaming by default on ModelStreamInfer, not on ModelInfer)."""
    exclude_input_in_output: bool | None


def parse_request(message: ModelInferRequest, default_max_tokens: int = 128) -> InferInput:
    """Read the tensors of a ModelInferRequest.

    Raises:
        InvalidArguments: a missing, unknown or malformed tensor, or bad sampling parameters.
    """
    values: dict[str, bytes | bool] = {}
    raw: Sequence[bytes] = message.raw_input_contents
    if raw and len(raw) != len(message.inputs):
        raise InvalidArguments("raw_input_contents must hold one entry per input tensor")
    for index, tensor in enumerate(message.inputs):
        if tensor.name in IGNORED_INPUTS:
            continue
        expected = INPUTS.get(tensor.name)
        if expected is None:
            raise InvalidArguments(f"unknown input tensor {tensor.name!r}; expected {sorted(INPUTS)}")
        if tensor.datatype != expected:
            raise InvalidArguments(f"input {tensor.name!r} must be {expected}, not {tensor.datatype!r}")
        values[tensor.name] = _scalar(tensor.name, expected, tensor.contents, raw[index] if raw else None)
    prompt, messages = values.get(TEXT_INPUT), values.get(MESSAGES)
    if (prompt is None) == (messages is None):
        raise InvalidArguments(f"give exactly one of the input tensors {TEXT_INPUT!r} or {MESSAGES!r}")
    sampling = _sampling(values.get(SAMPLING_PARAMETERS))
    try:
        generation = GenerationRequest(
            request_id=message.id,
            prompt=_text(TEXT_INPUT, prompt) if isinstance(prompt, bytes) else "",
            messages=_messages(messages) if isinstance(messages, bytes) else (),
            max_tokens=_or(_int(sampling, "max_tokens"), default_max_tokens),
            temperature=_float(sampling, "temperature", 0.0),
            top_p=_float(sampling, "top_p", 1.0),
            seed=_int(sampling, "seed"),
            stop=_stop(sampling.get("stop")),
        )
    except ValueError as exc:  # GenerationRequest's own checks; their text is ours
        raise InvalidArguments(str(exc)) from exc
    if generation.temperature < 0 or not 0 < generation.top_p <= 1:
        raise InvalidArguments("temperature must be >= 0 and top_p in (0, 1]")
    stream, exclude = values.get(STREAM), values.get(EXCLUDE_INPUT_IN_OUTPUT)
    return InferInput(
        model=message.model_name,
        generation=generation,
        stream=stream if isinstance(stream, bool) else None,
        exclude_input_in_output=exclude if isinstance(exclude, bool) else None,
    )


def build_request(
    request: GenerationRequest, model: str, *, stream: bool, exclude_input_in_output: bool = True
) -> ModelInferRequest:
    """The ModelInferRequest `parse_request` reads back as `request` (what `NodeClient` sends)."""
    sampling: dict[str, object] = {
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
    }
    if request.seed is not None:
        sampling["seed"] = request.seed
    if request.stop:
        sampling["stop"] = list(request.stop)
    message = ModelInferRequest(model_name=model, id=request.request_id)
    if request.messages:
        payload = json.dumps([{"role": m.role, "content": m.content} for m in request.messages])
        _add_bytes(message, MESSAGES, payload.encode("utf-8"))
    else:
        _add_bytes(message, TEXT_INPUT, request.prompt.encode("utf-8"))
    _add_bool(message, STREAM, stream)
    _add_bytes(message, SAMPLING_PARAMETERS, json.dumps(sampling).encode("utf-8"))
    _add_bool(message, EXCLUDE_INPUT_IN_OUTPUT, exclude_input_in_output)
    return message


def build_response(
    model: str, request_id: str, chunk: GenerationChunk, output_tokens: int, prefix: str = ""
) -> ModelInferResponse:
    """One reply: `chunk`'s text (after `prefix`, the echoed prompt), and `output_tokens` new tokens in it."""
    message = ModelInferResponse(model_name=model, id=request_id)
    _add_output(message, TEXT_OUTPUT, "BYTES", InferTensorContents(bytes_contents=[(prefix + chunk.text).encode()]))
    _add_output(message, NUM_INPUT_TOKENS, "UINT32", InferTensorContents(uint_contents=[chunk.prompt_tokens]))
    _add_output(message, NUM_OUTPUT_TOKENS, "UINT32", InferTensorContents(uint_contents=[output_tokens]))
    _add_output(message, NUM_CACHED_TOKENS, "UINT32", InferTensorContents(uint_contents=[chunk.cached_prompt_tokens]))
    if chunk.finish_reason is not None:
        reason = InferTensorContents(bytes_contents=[chunk.finish_reason.encode()])
        _add_output(message, FINISH_REASON, "BYTES", reason)
    return message


class ResponseReader:
    """Turns a stream of ModelInferResponses back into GenerationChunks with running completion counts."""

    def __init__(self) -> None:
        self.completion_tokens = 0

    def read(self, message: ModelInferResponse) -> GenerationChunk:
        """Raises `EngineError` when the reply lacks the tensors a meshgate node always sends."""
        outputs = {t.name: t.contents for t in message.outputs}
        try:
            text = outputs[TEXT_OUTPUT].bytes_contents[0].decode("utf-8")
            prompt_tokens = outputs[NUM_INPUT_TOKENS].uint_contents[0]
            new_tokens = outputs[NUM_OUTPUT_TOKENS].uint_contents[0]
        except (KeyError, IndexError, UnicodeDecodeError) as exc:
            raise EngineError("the node's reply is missing text_output or token counts") from exc
        cached = outputs[NUM_CACHED_TOKENS].uint_contents if NUM_CACHED_TOKENS in outputs else ()
        reason = outputs[FINISH_REASON].bytes_contents if FINISH_REASON in outputs else ()
        finish = reason[0].decode() if reason else None
        if finish is not None and finish not in get_args(FinishReason):
            raise EngineError(f"the node sent an unknown finish_reason {finish!r}")
        self.completion_tokens += new_tokens
        return GenerationChunk(
            text=text,
            prompt_tokens=prompt_tokens,
            completion_tokens=self.completion_tokens,
            finish_reason=cast(FinishReason | None, finish),
            cached_prompt_tokens=cached[0] if cached else 0,
        )


def _scalar(name: str, datatype: str, contents: InferTensorContents, raw: bytes | None) -> bytes | bool:
    """The one element of a [1]-shaped tensor, from typed contents or raw bytes (what tritonclient sends)."""
    if datatype == "BOOL":
        if raw is not None:
            if len(raw) != 1:
                raise InvalidArguments(f"input {name!r} must hold one BOOL")
            return raw != b"\x00"
        if len(contents.bool_contents) != 1:
            raise InvalidArguments(f"input {name!r} must hold one BOOL")
        return contents.bool_contents[0]
    if raw is not None:
        # raw BYTES elements are each a 4-byte little-endian length and the bytes (Triton's encoding)
        if len(raw) < 4 or struct.unpack_from("<I", raw)[0] != len(raw) - 4:
            raise InvalidArguments(f"input {name!r} must hold one BYTES element")
        return raw[4:]
    if len(contents.bytes_contents) != 1:
        raise InvalidArguments(f"input {name!r} must hold one BYTES element")
    return contents.bytes_contents[0]


def _text(name: str, value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidArguments(f"input {name!r} is not UTF-8") from exc


def _messages(value: bytes) -> tuple[ChatMessage, ...]:
    try:
        items: object = json.loads(_text(MESSAGES, value))
    except json.JSONDecodeError as exc:
        raise InvalidArguments(f"input {MESSAGES!r} is not JSON") from exc
    if not isinstance(items, list) or not items:
        raise InvalidArguments(f"input {MESSAGES!r} must be a non-empty JSON list of {{role, content}}")
    messages: list[ChatMessage] = []
    for item in cast(list[object], items):
        if not isinstance(item, dict):
            raise InvalidArguments(f"each of {MESSAGES!r} must be an object with role and content")
        entry = cast(dict[str, object], item)
        role, content = entry.get("role"), entry.get("content")
        if role not in get_args(Role) or not isinstance(content, str) or set(entry) - {"role", "content"}:
            raise InvalidArguments(f"each of {MESSAGES!r} needs role (system, user, assistant) and content (string)")
        messages.append(ChatMessage(role=cast(Role, role), content=content))
    return tuple(messages)


def _sampling(value: bytes | bool | None) -> dict[str, object]:
    if not isinstance(value, bytes):
        return {}
    try:
        parsed: object = json.loads(_text(SAMPLING_PARAMETERS, value))
    except json.JSONDecodeError as exc:
        raise InvalidArguments(f"input {SAMPLING_PARAMETERS!r} is not JSON") from exc
    if not isinstance(parsed, dict):
        raise InvalidArguments(f"input {SAMPLING_PARAMETERS!r} must be a JSON object")
    params = cast(dict[str, object], parsed)
    unknown = sorted(set(params) - SAMPLING_KEYS)
    if unknown:
        raise InvalidArguments(f"unsupported sampling parameters {unknown}; supported: {sorted(SAMPLING_KEYS)}")
    return params


def _int(params: dict[str, object], key: str) -> int | None:
    """Triton's clients send numbers or numeric strings (`{"max_tokens": "16"}`); both are accepted."""
    value = params.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidArguments(f"sampling parameter {key!r} must be an integer")
    try:
        return int(value)
    except ValueError as exc:
        raise InvalidArguments(f"sampling parameter {key!r} must be an integer") from exc


def _or(value: int | None, default: int) -> int:
    return default if value is None else value


def _float(params: dict[str, object], key: str, default: float) -> float:
    value = params.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise InvalidArguments(f"sampling parameter {key!r} must be a number")
    try:
        return float(value)
    except ValueError as exc:
        raise InvalidArguments(f"sampling parameter {key!r} must be a number") from exc


def _stop(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in cast(list[object], stops)):
        raise InvalidArguments("sampling parameter 'stop' must be a string or a list of non-empty strings")
    if len(cast(list[str], stops)) > MAX_STOP_STRINGS:
        raise InvalidArguments(f"at most {MAX_STOP_STRINGS} stop strings")
    return tuple(cast(list[str], stops))


def _add_bytes(message: ModelInferRequest, name: str, value: bytes) -> None:
    tensor = message.inputs.add(name=name, datatype="BYTES", shape=[1])
    tensor.contents.bytes_contents.append(value)


def _add_bool(message: ModelInferRequest, name: str, value: bool) -> None:
    tensor = message.inputs.add(name=name, datatype="BOOL", shape=[1])
    tensor.contents.bool_contents.append(value)


def _add_output(message: ModelInferResponse, name: str, datatype: str, contents: InferTensorContents) -> None:
    message.outputs.add(name=name, datatype=datatype, shape=[1], contents=contents)
