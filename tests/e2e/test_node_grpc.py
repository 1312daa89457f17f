"""The inference node at the socket: KServe v2 gRPC with the real CPU model, cancellation, a node dying, the CLI."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TypeVar, cast

import anyio
import anyio.to_thread
import grpc
import grpc.aio
import pytest
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2

from inference_node.client import NodeClient
from inference_node.engine import ChatMessage, GenerationRequest
from inference_node.node import NodeConfig, RunningNode, running_node
from inference_node.proto import grpc_predict_v2_pb2 as pb
from meshgate.errors import InvalidArguments, ModelNotFound, NodeUnavailable
from registry.sqlite_store import SqliteStore

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

PROMPT = "The three primary colors are"
R = TypeVar("R", bound=Message)
V2 = "/inference.GRPCInferenceService/"


def serialize(message: Message) -> bytes:
    return message.SerializeToString()


async def unary(channel: grpc.aio.Channel, method: str, request: Message, reply: type[R]) -> R:
    """A typed call (the generated stubs are untyped)."""
    call = channel.unary_unary(method, request_serializer=serialize, response_deserializer=reply.FromString)
    return await call(request)


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[RunningNode]:
    store = SqliteStore(tmp_path / "registry.db")
    async with running_node(NodeConfig(name="cpu-1", port=0, capacity=1), store) as running:
        yield running
    store.close()


@pytest.fixture
async def channel(node: RunningNode) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(node.address) as channel:
        yield channel


def infer_request(tensors: dict[str, bytes], model: str = "smollm2") -> pb.ModelInferRequest:
    message = pb.ModelInferRequest(model_name=model, id="raw")
    for name, value in tensors.items():
        message.inputs.add(name=name, datatype="BYTES", shape=[1]).contents.bytes_contents.append(value)
    return message


def outputs(response: pb.ModelInferResponse) -> dict[str, object]:
    found: dict[str, object] = {}
    for t in response.outputs:
        found[t.name] = t.contents.bytes_contents[0].decode() if t.datatype == "BYTES" else t.contents.uint_contents[0]
    return found


async def test_unary_model_infer_returns_text_and_token_counts(channel: grpc.aio.Channel) -> None:
    request = infer_request({"text_input": PROMPT.encode(), "sampling_parameters": b'{"max_tokens": 8}'})
    with anyio.fail_after(60):
        response = await unary(channel, V2 + "ModelInfer", request, pb.ModelInferResponse)
    got = outputs(response)
    assert (response.model_name, response.id) == ("smollm2", "raw")
    assert sorted(got) == ["finish_reason", "num_cached_tokens", "num_input_tokens", "num_output_tokens", "text_output"]
    assert (got["num_output_tokens"], got["finish_reason"]) == (8, "length")
    text = got["text_output"]
    assert isinstance(text, str) and text.startswith(PROMPT) and len(text) > len(PROMPT)  # Triton's default echo


async def test_server_streaming_sends_the_generation_chunk_by_chunk(channel: grpc.aio.Channel) -> None:
    request = infer_request({"text_input": PROMPT.encode(), "sampling_parameters": b'{"max_tokens": 12}'})
    method = "/meshgate.inference.v1.GRPCInferenceStreamService/ModelStreamInfer"
    call = channel.unary_stream(
        method, request_serializer=serialize, response_deserializer=pb.ModelInferResponse.FromString
    )
    with anyio.fail_after(60):
        replies = [outputs(r) async for r in cast(AsyncIterator[pb.ModelInferResponse], call(request))]
    assert len(replies) > 2
    assert sum(int(str(r["num_output_tokens"])) for r in replies) == 12
    assert [r.get("finish_reason") for r in replies][-1] == "length"
    assert all("finish_reason" not in r for r in replies[:-1])


async def test_node_client_streams_chat_and_unary_with_running_counts(node: RunningNode) -> None:
    client = NodeClient(node.address, "smollm2")
    request = GenerationRequest(request_id="c1", messages=(ChatMessage("user", "What is 2+2?"),), max_tokens=16)
    with anyio.fail_after(60):
        chunks = [c async for c in client.generate(request)]
        whole = await client.infer(request)
    await client.aclose()
    assert [c.completion_tokens for c in chunks] == sorted(c.completion_tokens for c in chunks)
    assert "".join(c.text for c in chunks) == whole.text
    assert (chunks[-1].completion_tokens, chunks[-1].finish_reason) == (whole.completion_tokens, whole.finish_reason)
    assert whole.prompt_tokens > 20  # the chat template's system turn and markers


async def test_a_client_that_cancels_mid_stream_frees_the_node_for_the_next_request(node: RunningNode) -> None:
    client = NodeClient(node.address, "smollm2")
    with anyio.fail_after(60):
        stream = client.generate(GenerationRequest(request_id="long", prompt="Once upon a time", max_tokens=2000))
        first = await anext(stream)
        assert node.servicer.in_flight == 1
        await stream.aclose()
        while node.servicer.in_flight:
            await node.servicer.load_changed()
        status = await client.status()
        after = await client.infer(GenerationRequest(request_id="next", prompt=PROMPT, max_tokens=4))
    await client.aclose()
    assert first.finish_reason is None
    assert (status.in_flight, status.queued, status.capacity) == (0, 0, 1)
    assert after.finish_reason == "length"


async def test_health_readiness_metadata_and_load_are_served(node: RunningNode, channel: grpc.aio.Channel) -> None:
    client = NodeClient(node.address, "smollm2")
    with anyio.fail_after(30):
        live = await unary(channel, V2 + "ServerLive", pb.ServerLiveRequest(), pb.ServerLiveResponse)
        ready = await unary(channel, V2 + "ServerReady", pb.ServerReadyRequest(), pb.ServerReadyResponse)
        model_ready = await unary(
            channel, V2 + "ModelReady", pb.ModelReadyRequest(name="smollm2"), pb.ModelReadyResponse
        )
        other_ready = await unary(channel, V2 + "ModelReady", pb.ModelReadyRequest(name="gpt-5"), pb.ModelReadyResponse)
        meta = await unary(
            channel, V2 + "ModelMetadata", pb.ModelMetadataRequest(name="smollm2"), pb.ModelMetadataResponse
        )
        server = await unary(channel, V2 + "ServerMetadata", pb.ServerMetadataRequest(), pb.ServerMetadataResponse)
        checked = await unary(
            channel, "/grpc.health.v1.Health/Check", health_pb2.HealthCheckRequest(), health_pb2.HealthCheckResponse
        )
        status = await client.status()
    await client.aclose()
    assert (live.live, ready.ready, model_ready.ready, other_ready.ready) == (True, True, True, False)
    assert (meta.name, meta.platform) == ("smollm2", "llama.cpp")
    assert [t.name for t in meta.inputs] == [
        "text_input",
        "messages",
        "stream",
        "sampling_parameters",
        "exclude_input_in_output",
    ]
    assert "meshgate.inference.v1.GRPCInferenceStreamService" in server.extensions
    assert checked.status == health_pb2.HealthCheckResponse.SERVING
    assert (status.name, status.model, status.engine, status.in_flight, status.ready) == (
        "cpu-1",
        "smollm2",
        "llama.cpp",
        0,
        True,
    )


@pytest.mark.parametrize(
    "tensors",
    [
        {"sampling_parameters": b'{"max_tokens": 4}'},
        {"text_input": b"hi", "sampling_parameters": b"{max_tokens: 4"},
        {"messages": b'[{"role": "user"}]'},
    ],
)
async def test_malformed_requests_get_invalid_argument(channel: grpc.aio.Channel, tensors: dict[str, bytes]) -> None:
    with anyio.fail_after(30), pytest.raises(grpc.aio.AioRpcError) as caught:
        await unary(channel, V2 + "ModelInfer", infer_request(tensors), pb.ModelInferResponse)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_node_client_maps_grpc_errors_to_mesh_errors(node: RunningNode) -> None:
    wrong_model = NodeClient(node.address, "gpt-5")
    client = NodeClient(node.address, "smollm2")
    with anyio.fail_after(30):
        with pytest.raises(ModelNotFound):
            await wrong_model.infer(GenerationRequest(request_id="x", prompt="hi", max_tokens=2))
        with pytest.raises(InvalidArguments):
            await client.infer(GenerationRequest(request_id="x", prompt="hi", max_tokens=2, temperature=-1))
    await wrong_model.aclose()
    await client.aclose()


def start_cli_node(tmp_path: Path, name: str) -> subprocess.Popen[str]:
    config = tmp_path / "meshgate.yaml"
    config.write_text(json.dumps({"registry": {"url": "sqlite:///registry.db"}}))
    argv = [sys.executable, "-m", "meshgate", "-c", str(config), "node", "--name", name, "--port", "0"]
    return subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


async def announced_address(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    with anyio.fail_after(60):
        line = await anyio.to_thread.run_sync(process.stdout.readline, abandon_on_cancel=True)
    assert line.startswith("meshgate node "), process.stderr.read() if process.stderr else line
    return line.split()[-1]


async def test_a_node_killed_mid_stream_raises_node_unavailable_not_a_hang(tmp_path: Path) -> None:
    process = start_cli_node(tmp_path, "doomed")
    try:
        client = NodeClient(await announced_address(process), "smollm2")
        request = GenerationRequest(request_id="k", prompt="Once upon a time", max_tokens=2000)
        with anyio.fail_after(60), pytest.raises(NodeUnavailable) as caught:
            async for _ in client.generate(request):
                process.kill()
        await client.aclose()
    finally:
        process.kill()
        process.wait(10)
    assert caught.value.code == "node_unavailable"
    assert caught.value.data["started"] is True


async def test_meshgate_node_registers_and_removes_itself_on_sigint(tmp_path: Path) -> None:
    process = start_cli_node(tmp_path, "cli-node")
    try:
        address = await announced_address(process)
        store = SqliteStore(tmp_path / "registry.db")
        registered = [(n.name, n.model, n.engine, n.address, n.capacity) for n in store.list_nodes()]
        process.send_signal(signal.SIGINT)
        with anyio.fail_after(30):
            status = await anyio.to_thread.run_sync(process.wait)
        remaining = store.list_nodes()
        store.close()
    finally:
        process.kill()
        process.wait(10)
    assert registered == [("cli-node", "smollm2", "llama.cpp", address, 2)]
    assert (status, remaining) == (130, [])
