"""`NodeClient`: the router's (and the benchmark's) async gRPC client of one inference node.

`generate` has the shape of `EngineClient.generate`, so a node can stand where an engine does. gRPC
failures become meshgate errors here: a node that is down, dies mid-stream or misses the deadline is
`NodeUnavailable` (naming the node and whether output had started), never a hang; closing the iterator
early cancels the RPC, which cancels the generation on the node.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import TypeVar, cast

import grpc
import grpc.aio
from google.protobuf.message import Message
from opentelemetry import propagate

from inference_node import wire
from inference_node.engine import GenerationChunk, GenerationRequest
from inference_node.proto import grpc_predict_v2_pb2 as pb
from inference_node.proto import node_status_pb2 as status_pb
from meshgate.errors import EngineError, InvalidArguments, MeshError, ModelNotFound, NodeUnavailable

# Keepalive pings find a node that stopped answering without closing its socket (a hung or partitioned host).
CHANNEL_OPTIONS: list[tuple[str, int]] = [
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]
UNAVAILABLE_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.CANCELLED,  # the node cancelled it: it is shutting down
        grpc.StatusCode.RESOURCE_EXHAUSTED,  # its queue is full: another node may take it
        grpc.StatusCode.UNKNOWN,  # how grpc reports a connection lost mid-call on some paths
    }
)


R = TypeVar("R", bound=Message)
# Full method names; the generated `_pb2_grpc` stubs are untyped, so calls are made on the channel with typed replies.
MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"
MODEL_READY = "/inference.GRPCInferenceService/ModelReady"
MODEL_STREAM_INFER = "/meshgate.inference.v1.GRPCInferenceStreamService/ModelStreamInfer"
GET_STATUS = "/meshgate.inference.v1.NodeStatus/GetStatus"


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """A node's `NodeStatus.GetStatus` reply."""

    name: str
    model: str
    engine: str
    in_flight: int
    queued: int
    capacity: int
    context_tokens: int
    ready: bool


def _trace_metadata() -> tuple[tuple[str, str], ...]:
    """The current span's W3C trace context as gRPC metadata, so the node's span joins the caller's trace."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return tuple(carrier.items())


class NodeClient:
    """One node at `address` (host:port); requests name `model`, the model id the node was registered with."""

    def __init__(self, address: str, model: str, *, timeout_s: float | None = None) -> None:
        """`timeout_s` bounds each whole call (None: no deadline; liveness comes from keepalive)."""
        self.address = address
        self.model = model
        self._timeout_s = timeout_s
        self._channel = grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[GenerationChunk, None]:
        """Stream the generation from the node (ModelStreamInfer); closing early cancels it on the node.

        Raises:
            NodeUnavailable: the node is down, died mid-stream, is over capacity or missed the deadline.
            ModelNotFound: the node does not serve `model`.
            InvalidArguments: the node rejected the request.
            EngineError: the node's engine failed.
        """
        message = wire.build_request(request, self.model, stream=True)
        call = self._channel.unary_stream(
            MODEL_STREAM_INFER, request_serializer=_serialize, response_deserializer=pb.ModelInferResponse.FromString
        )(message, timeout=self._timeout_s, metadata=_trace_metadata())
        responses = cast(AsyncIterator[pb.ModelInferResponse], call)
        reader = wire.ResponseReader()
        started = False
        try:
            async for response in responses:
                chunk = reader.read(response)
                started = True
                yield chunk
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc, started, reader.completion_tokens) from exc
        finally:
            call.cancel()

    async def infer(self, request: GenerationRequest) -> GenerationChunk:
        """The whole generation in one unary ModelInfer: all the text, the counts and the finish reason.

        Raises:
            NodeUnavailable, ModelNotFound, InvalidArguments, EngineError: as for `generate`.
        """
        message = wire.build_request(request, self.model, stream=False)
        try:
            response = await self._unary(MODEL_INFER, message, pb.ModelInferResponse, self._timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc, False, 0) from exc
        return wire.ResponseReader().read(response)

    async def status(self) -> NodeStatus:
        """The node's load. Raises `NodeUnavailable`."""
        try:
            reply = await self._unary(
                GET_STATUS, status_pb.NodeStatusRequest(), status_pb.NodeStatusResponse, self._timeout_s
            )
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc, False, 0) from exc
        return NodeStatus(
            name=reply.name,
            model=reply.model,
            engine=reply.engine,
            in_flight=reply.in_flight,
            queued=reply.queued,
            capacity=reply.capacity,
            context_tokens=reply.context_tokens,
            ready=reply.ready,
        )

    async def ready(self, timeout_s: float = 5.0) -> bool:
        """Whether the node answers and its model is ready (KServe ModelReady); False when it does not answer."""
        try:
            reply = await self._unary(
                MODEL_READY, pb.ModelReadyRequest(name=self.model), pb.ModelReadyResponse, timeout_s
            )
        except grpc.aio.AioRpcError:
            return False
        return reply.ready

    async def aclose(self) -> None:
        await self._channel.close()

    async def _unary(self, method: str, request: Message, reply: type[R], timeout_s: float | None) -> R:
        call = self._channel.unary_unary(method, request_serializer=_serialize, response_deserializer=reply.FromString)
        return await call(request, timeout=timeout_s)

    def _error(self, exc: grpc.aio.AioRpcError, started: bool, completion_tokens: int) -> MeshError:
        code, details = exc.code(), exc.details() or ""
        if code == grpc.StatusCode.NOT_FOUND:
            return ModelNotFound(details or f"node {self.address} does not serve {self.model!r}", node=self.address)
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            return InvalidArguments(details or "the node rejected the request", node=self.address)
        if code in UNAVAILABLE_CODES:
            progress = (
                f"after output had started ({completion_tokens} tokens received)" if started else "before any output"
            )
            return NodeUnavailable(
                f"inference node {self.address} is unavailable ({code.name.lower()}) {progress}",
                node=self.address,
                started=started,
                completion_tokens=completion_tokens,
            )
        # INTERNAL and anything unexpected: the node's own details are safe (its servicer wrote them)
        return EngineError(f"inference node {self.address}: {details or code.name.lower()}", node=self.address)


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()
