"""The node's gRPC servicer: KServe v2 `GRPCInferenceService`, our streaming extension and `NodeStatus`.

Thin: parse the tensors (`wire.py`) → `GenerationRequest` → the engine → tensors. Errors are mapped here, in
the one `GRPC_STATUS` table. It counts generations in flight and queued (for `NodeStatus` and the registry
heartbeat) and bounds the queue. When the client goes away grpc.aio cancels the handler, and closing the
engine's iterator (`aclosing`) cancels the generation in the engine.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Generator

import anyio
import grpc
import grpc.aio
from grpc_health.v1 import health_pb2
from grpc_health.v1._async import HealthServicer as AsyncHealthServicer  # pyright: ignore[reportMissingTypeStubs]
from opentelemetry import propagate, trace

from inference_node import wire
from inference_node.engine import EngineClient, GenerationChunk
from inference_node.proto import grpc_predict_v2_pb2 as pb
from inference_node.proto import grpc_predict_v2_pb2_grpc as pb_grpc
from inference_node.proto import inference_stream_pb2_grpc as stream_grpc
from inference_node.proto import node_status_pb2 as status_pb
from inference_node.proto import node_status_pb2_grpc as status_grpc
from meshgate import errors
from meshgate.errors import InvalidArguments, MeshError, ModelNotFound

logger = logging.getLogger(__name__)
_tracer = trace.get_tracer("meshgate.inference_node")

INFER_SERVICE = "inference.GRPCInferenceService"
STREAM_SERVICE = "meshgate.inference.v1.GRPCInferenceStreamService"
STATUS_SERVICE = "meshgate.inference.v1.NodeStatus"
SERVED_VERSIONS = ("", "1")
"""The node serves one version of its model; "" lets the server choose (KServe v2)."""

GRPC_STATUS: dict[type[MeshError], grpc.StatusCode] = {
    errors.MeshError: grpc.StatusCode.INTERNAL,
    errors.ConfigError: grpc.StatusCode.INTERNAL,
    errors.MissingDependency: grpc.StatusCode.INTERNAL,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.PolicyDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.PolicyUnavailable: grpc.StatusCode.UNAVAILABLE,
    errors.PolicyBundleInvalid: grpc.StatusCode.INTERNAL,
    errors.ToolNotFound: grpc.StatusCode.NOT_FOUND,
    errors.ResourceNotFound: grpc.StatusCode.NOT_FOUND,
    errors.PromptNotFound: grpc.StatusCode.NOT_FOUND,
    errors.AgentNotFound: grpc.StatusCode.NOT_FOUND,
    errors.ToolNotPinned: grpc.StatusCode.FAILED_PRECONDITION,
    errors.InvalidArguments: grpc.StatusCode.INVALID_ARGUMENT,
    errors.PayloadTooLarge: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.UpstreamUnavailable: grpc.StatusCode.UNAVAILABLE,
    errors.UpstreamTimeout: grpc.StatusCode.DEADLINE_EXCEEDED,
    errors.UpstreamError: grpc.StatusCode.INTERNAL,
    errors.CardInvalid: grpc.StatusCode.INTERNAL,
    errors.CardSignatureInvalid: grpc.StatusCode.INTERNAL,
    errors.ModelNotFound: grpc.StatusCode.NOT_FOUND,
    errors.NodeUnavailable: grpc.StatusCode.UNAVAILABLE,
    errors.EngineError: grpc.StatusCode.INTERNAL,
    errors.RegistryError: grpc.StatusCode.INTERNAL,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
}

Context = grpc.aio.ServicerContext[pb.ModelInferRequest, pb.ModelInferResponse]


def grpc_status(exc: MeshError) -> grpc.StatusCode:
    """The table's code for `exc`'s class (every MeshError class is in the table; a test checks)."""
    return GRPC_STATUS.get(type(exc), grpc.StatusCode.INTERNAL)


class NodeServicer(pb_grpc.GRPCInferenceServiceServicer, stream_grpc.GRPCInferenceStreamServiceServicer):
    """Serves one loaded engine. Add it to a server with `add_to_server`."""

    def __init__(self, engine: EngineClient, *, name: str, capacity: int, max_queued: int = 64) -> None:
        self.engine = engine
        self.name = name
        self.capacity = max(1, capacity)
        self.max_queued = max_queued
        self.in_flight = 0
        self.queued = 0
        self.ready = True
        self.health = AsyncHealthServicer()
        self._slots = anyio.Semaphore(self.capacity)
        self._changed = anyio.Event()

    def add_to_server(self, server: grpc.aio.Server) -> None:
        pb_grpc.add_GRPCInferenceServiceServicer_to_server(self, server)  # pyright: ignore[reportUnknownMemberType]
        stream_grpc.add_GRPCInferenceStreamServiceServicer_to_server(self, server)  # pyright: ignore[reportUnknownMemberType]
        status_grpc.add_NodeStatusServicer_to_server(_StatusServicer(self), server)  # pyright: ignore[reportUnknownMemberType]
        from grpc_health.v1 import health_pb2_grpc

        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)  # pyright: ignore[reportUnknownMemberType]

    async def set_serving(self, serving: bool) -> None:
        """Readiness for ServerReady/ModelReady and the gRPC health service ("" and each service name)."""
        self.ready = serving
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for service in ("", INFER_SERVICE, STREAM_SERVICE, STATUS_SERVICE):
            await self.health.set(service, status)

    async def load_changed(self) -> None:
        """Returns at the next change of `in_flight` or `queued` (tests and the heartbeat wait on it)."""
        await self._changed.wait()

    def status(self) -> status_pb.NodeStatusResponse:
        info = self.engine.info
        return status_pb.NodeStatusResponse(
            name=self.name,
            model=info.model,
            engine=info.engine,
            in_flight=self.in_flight,
            queued=self.queued,
            capacity=self.capacity,
            context_tokens=info.context_tokens,
            ready=self.ready,
        )

    # KServe v2 health and metadata
    async def ServerLive(self, request: pb.ServerLiveRequest, context: object) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: pb.ServerReadyRequest, context: object) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self.ready)

    async def ModelReady(self, request: pb.ModelReadyRequest, context: object) -> pb.ModelReadyResponse:
        return pb.ModelReadyResponse(ready=self.ready and self._serves(request.name, request.version))

    async def ServerMetadata(self, request: pb.ServerMetadataRequest, context: object) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(
            name="meshgate",
            version=importlib.metadata.version("meshgate"),
            extensions=[STREAM_SERVICE, STATUS_SERVICE, "messages_input"],
        )

    async def ModelMetadata(
        self, request: pb.ModelMetadataRequest, context: grpc.aio.ServicerContext[object, object]
    ) -> pb.ModelMetadataResponse:
        if not self._serves(request.name, request.version):
            await context.abort(grpc.StatusCode.NOT_FOUND, self._not_served(request.name).detail)
        info = self.engine.info
        return pb.ModelMetadataResponse(
            name=info.model,
            versions=["1"],
            platform=info.engine,
            inputs=[_tensor(name, dt) for name, dt in wire.INPUTS.items()],
            outputs=[_tensor(name, dt) for name, dt in wire.OUTPUTS.items()],
        )

    # generation
    async def ModelInfer(self, request: pb.ModelInferRequest, context: Context) -> pb.ModelInferResponse:
        try:
            parsed = self._parse(request)
            if parsed.stream:
                raise InvalidArguments("ModelInfer is unary: send stream=true to ModelStreamInfer")
            with _generation_span(self, context) as span:
                async with self._admitted(context):
                    chunks = [chunk async for chunk in self._generate(parsed)]
                _count_tokens(span, _joined(chunks))
            return self._reply(parsed, _joined(chunks), echo=not parsed.exclude_input_in_output)
        except MeshError as exc:
            await context.abort(grpc_status(exc), exc.detail)
        except grpc.aio.AbortError:
            raise
        except Exception:
            logger.exception("ModelInfer failed")
            await context.abort(grpc.StatusCode.INTERNAL, "the inference node failed")

    async def ModelStreamInfer(
        self, request: pb.ModelInferRequest, context: Context
    ) -> AsyncIterator[pb.ModelInferResponse]:
        try:
            parsed = self._parse(request)
            if parsed.stream is False:
                async with self._admitted(context):
                    chunks = [chunk async for chunk in self._generate(parsed)]
                yield self._reply(parsed, _joined(chunks), echo=parsed.exclude_input_in_output is False)
                return
            if parsed.exclude_input_in_output is False:
                raise InvalidArguments("exclude_input_in_output=false is not allowed when streaming (as in Triton)")
            with _generation_span(self, context) as span:
                async with self._admitted(context):
                    reported = 0
                    async for chunk in self._generate(parsed):
                        yield self._reply(parsed, chunk, output_tokens=chunk.completion_tokens - reported)
                        reported = chunk.completion_tokens
                        _count_tokens(span, chunk)
        except MeshError as exc:
            await context.abort(grpc_status(exc), exc.detail)
        except grpc.aio.AbortError:
            raise
        except Exception:
            logger.exception("ModelStreamInfer failed")
            await context.abort(grpc.StatusCode.INTERNAL, "the inference node failed")

    def _parse(self, request: pb.ModelInferRequest) -> wire.InferInput:
        if not self._serves(request.model_name, request.model_version):
            raise self._not_served(request.model_name)
        return wire.parse_request(request)

    async def _generate(self, parsed: wire.InferInput) -> AsyncIterator[GenerationChunk]:
        """The engine's chunks; leaving early (the RPC was cancelled) closes the engine's iterator, cancelling it."""
        async with contextlib.aclosing(self.engine.generate(parsed.generation)) as chunks:
            async for chunk in chunks:
                yield chunk

    @contextlib.asynccontextmanager
    async def _admitted(self, context: Context) -> AsyncGenerator[None, None]:
        """Hold one of `capacity` slots; wait in a queue bounded by `max_queued` (RESOURCE_EXHAUSTED beyond)."""
        if not self.ready:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "the node is shutting down")
        if self._slots.value == 0 and self.queued >= self.max_queued:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"the node's queue is full ({self.max_queued})")
        self._count(queued=+1)
        try:
            await self._slots.acquire()
        finally:
            self._count(queued=-1)
        self._count(in_flight=+1)
        try:
            yield
        finally:
            self._slots.release()
            self._count(in_flight=-1)

    def _count(self, *, in_flight: int = 0, queued: int = 0) -> None:
        self.in_flight += in_flight
        self.queued += queued
        self._changed.set()
        self._changed = anyio.Event()

    def _reply(
        self, parsed: wire.InferInput, chunk: GenerationChunk, output_tokens: int | None = None, echo: bool = False
    ) -> pb.ModelInferResponse:
        # Triton's unary default echoes the prompt before the completion; chat messages have no text to echo
        prefix = parsed.generation.prompt if echo else ""
        tokens = chunk.completion_tokens if output_tokens is None else output_tokens
        return wire.build_response(self.engine.info.model, parsed.generation.request_id, chunk, tokens, prefix)

    def _serves(self, model: str, version: str) -> bool:
        return model == self.engine.info.model and version in SERVED_VERSIONS

    def _not_served(self, model: str) -> ModelNotFound:
        return ModelNotFound(f"this node serves {self.engine.info.model!r}, not {model!r}", model=model)


class _StatusServicer(status_grpc.NodeStatusServicer):
    def __init__(self, node: NodeServicer) -> None:
        self._node = node

    async def GetStatus(self, request: status_pb.NodeStatusRequest, context: object) -> status_pb.NodeStatusResponse:
        return self._node.status()


def _joined(chunks: list[GenerationChunk]) -> GenerationChunk:
    """A whole generation as one chunk: all the text, the last chunk's counts and finish reason."""
    last = chunks[-1]
    return GenerationChunk(
        text="".join(c.text for c in chunks),
        prompt_tokens=last.prompt_tokens,
        completion_tokens=last.completion_tokens,
        finish_reason=last.finish_reason,
        cached_prompt_tokens=last.cached_prompt_tokens,
    )


def _tensor(name: str, datatype: str) -> pb.ModelMetadataResponse.TensorMetadata:
    return pb.ModelMetadataResponse.TensorMetadata(name=name, datatype=datatype, shape=[1])


@contextlib.contextmanager
def _generation_span(servicer: NodeServicer, context: Context) -> Generator[trace.Span]:
    """The node's span for one generation, a child of the caller's (W3C trace context in the call metadata)."""
    carrier = {k: v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}
    info = servicer.engine.info
    attributes = {"meshgate.node": servicer.name, "gen_ai.request.model": info.model, "meshgate.engine": info.engine}
    with _tracer.start_as_current_span(
        "inference.generate", context=propagate.extract(carrier), kind=trace.SpanKind.SERVER, attributes=attributes
    ) as span:
        yield span


def _count_tokens(span: trace.Span, chunk: GenerationChunk) -> None:
    span.set_attributes(
        {
            "gen_ai.usage.input_tokens": chunk.prompt_tokens,
            "gen_ai.usage.output_tokens": chunk.completion_tokens,
            "meshgate.cached_prompt_tokens": chunk.cached_prompt_tokens,
        }
    )
    if chunk.finish_reason:
        span.set_attribute("gen_ai.response.finish_reasons", [chunk.finish_reason])
