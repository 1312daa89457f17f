"""The KServe v2 tensor convention: requests and replies round-trip; malformed tensors are InvalidArguments."""

from __future__ import annotations

import json
import struct

import pytest

from inference_node import wire
from inference_node.engine import ChatMessage, GenerationChunk, GenerationRequest
from inference_node.proto.grpc_predict_v2_pb2 import ModelInferRequest
from meshgate.errors import InvalidArguments


def test_a_request_round_trips_through_the_tensors() -> None:
    request = GenerationRequest(
        request_id="r1", messages=(ChatMessage("user", "hi"),), max_tokens=7, temperature=0.5, seed=3, stop=("x",)
    )
    parsed = wire.parse_request(wire.build_request(request, "smollm2", stream=True))
    assert (parsed.model, parsed.generation, parsed.stream, parsed.exclude_input_in_output) == (
        "smollm2",
        request,
        True,
        True,
    )


def test_raw_input_contents_as_tritonclient_sends_them_are_read() -> None:
    message = ModelInferRequest(model_name="smollm2", id="r2")
    message.inputs.add(name="text_input", datatype="BYTES", shape=[1])
    message.inputs.add(name="stream", datatype="BOOL", shape=[1])
    message.inputs.add(name="sampling_parameters", datatype="BYTES", shape=[1])
    params = json.dumps({"max_tokens": "16", "stop": "\n"}).encode()
    message.raw_input_contents.extend(
        [struct.pack("<I", 5) + b"hello", b"\x00", struct.pack("<I", len(params)) + params]
    )
    parsed = wire.parse_request(message)
    assert (parsed.generation.prompt, parsed.generation.max_tokens, parsed.generation.stop) == ("hello", 16, ("\n",))
    assert parsed.stream is False


@pytest.mark.parametrize(
    "tensors",
    [
        {},
        {"text_input": b"a", "messages": b"[]"},
        {"text_input": b"a", "sampling_parameters": b"{not json"},
        {"text_input": b"a", "sampling_parameters": b'{"max_tokens": 0}'},
        {"text_input": b"a", "sampling_parameters": b'{"best_of": 2}'},
        {"text_input": b"a", "sampling_parameters": b'{"temperature": "hot"}'},
        {"messages": b'[{"role": "robot", "content": "x"}]'},
        {"prompt": b"a"},
    ],
)
def test_malformed_requests_are_invalid_arguments(tensors: dict[str, bytes]) -> None:
    message = ModelInferRequest(model_name="smollm2")
    for name, value in tensors.items():
        message.inputs.add(name=name, datatype="BYTES", shape=[1]).contents.bytes_contents.append(value)
    with pytest.raises(InvalidArguments) as caught:
        wire.parse_request(message)
    assert caught.value.code == "invalid_arguments"


def test_replies_carry_per_reply_output_tokens_that_the_reader_sums() -> None:
    reader = wire.ResponseReader()
    first = GenerationChunk(text="a", prompt_tokens=5, completion_tokens=2, cached_prompt_tokens=4)
    last = GenerationChunk(text="b", prompt_tokens=5, completion_tokens=3, finish_reason="length")
    chunks = [reader.read(wire.build_response("m", "r", first, 2)), reader.read(wire.build_response("m", "r", last, 1))]
    assert chunks == [first, GenerationChunk(text="b", prompt_tokens=5, completion_tokens=3, finish_reason="length")]
