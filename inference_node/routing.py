"""The async routing layer: streams a generation from the node `router.NodeRouter` picks, with failover.

It reads the registered nodes from the store (every `refresh_s`, and at once for a model it does not
know), keeps one client per node address, and bounds every wait for a chunk, so a node that stops
answering fails the request with `NodeUnavailable` instead of hanging it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol

import anyio
from opentelemetry import context as otel_context
from opentelemetry import trace

from inference_node.engine import GenerationChunk, GenerationRequest
from inference_node.router import NodeRouter, NodeStatus, RouterConfig
from meshgate.errors import NodeUnavailable
from registry.models import InferenceNode
from registry.store import RegistryStore

logger = logging.getLogger(__name__)
_tracer = trace.get_tracer("meshgate.inference_node")

RoutingConfig = RouterConfig
"""The one config of routing, also under the name the async layer's callers look for."""


class NodeClientLike(Protocol):
    """What the router needs of a connection to a node (`client.NodeClient`; `testing.FakeEngine` in tests)."""

    def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationChunk]:
        """Raises `NodeUnavailable` when the node cannot be reached or dies mid-stream."""
        ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class RoutedChunk:
    chunk: GenerationChunk
    node: str
    """The node that produced it (for metering)."""


class _NodeFailed(Exception):
    """The node did not produce its next chunk: unreachable, died, or silent past the chunk timeout."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ModelRouter:
    """Routes generations for every model served by the registered inference nodes."""

    def __init__(
        self,
        store: RegistryStore,
        connect: Callable[[InferenceNode], NodeClientLike],
        config: RouterConfig | None = None,
        *,
        router: NodeRouter | None = None,
    ) -> None:
        """`connect` opens a client for a node; it is called once per node address. `router` injects a clock."""
        self._store = store
        self._connect = connect
        self._router = router or NodeRouter(config)
        self.config = self._router.config
        self._clients: dict[str, NodeClientLike] = {}
        self._refreshed_at: float | None = None
        self._refresh_lock = anyio.Lock()

    @property
    def router(self) -> NodeRouter:
        return self._router

    async def refresh(self) -> None:
        """Re-read the registered nodes now; closes clients of addresses no node has any more."""
        async with self._refresh_lock:
            nodes = await anyio.to_thread.run_sync(self._store.list_nodes)
            self._router.update_nodes(nodes)
            self._refreshed_at = anyio.current_time()
            addresses = {n.address for n in nodes}
            gone = [a for a in self._clients if a not in addresses]
            for address in gone:
                await self._clients.pop(address).aclose()

    async def status(self) -> list[NodeStatus]:
        """The nodes as the router sees them, after a refresh (for `/healthz`)."""
        await self.refresh()
        return self._router.status()

    async def generate(self, request: GenerationRequest, model: str) -> AsyncGenerator[RoutedChunk, None]:
        """Stream `request` from a node serving `model`.

        A node that fails before its first chunk is taken out of the rotation and the request is tried
        once more on another node. Closing the iterator early closes the node's stream (the node cancels).

        Raises:
            ModelNotFound: no registered node serves `model`.
            NodeUnavailable: no healthy node, both tries failed, or the node stopped mid-generation.
            EngineError: the engine failed the generation (the node is still healthy; not retried).
        """
        tried: list[str] = []
        for attempt in (1, 2):
            node = await self._choose(model, request, tried)
            started = False
            # Not made current across the yields below (an async generator resumes in its caller's
            # context); each read from the node runs under it, so the node's span joins this trace.
            span = _tracer.start_span(
                f"route {model}",
                attributes={"gen_ai.request.model": model, "meshgate.node": node.name, "meshgate.attempt": attempt},
            )
            traced = trace.set_span_in_context(span)
            try:
                stream = self._client(node).generate(request)
                try:
                    while (chunk := await self._next(stream, node, traced)) is not None:
                        if not started:
                            started = True
                            self._router.mark_ok(node.name)
                        yield RoutedChunk(chunk, node.name)
                    return
                finally:
                    # Runs on early close too (GeneratorExit at the yield): the node sees its stream cancelled.
                    await _close(stream)
            except _NodeFailed as failure:
                span.set_status(trace.Status(trace.StatusCode.ERROR, failure.reason))
                self._router.mark_failed(node.name, failure.reason)
                if started:
                    raise NodeUnavailable(
                        f"node {node.name!r} stopped answering mid-generation: {failure.reason}", node=node.name
                    ) from failure
                logger.warning("node %s failed before its first chunk (%s); attempt %d", node.name, failure, attempt)
                tried.append(node.name)
                if attempt == 2:
                    raise NodeUnavailable(
                        f"nodes {', '.join(tried)} for model {model!r} failed: {failure.reason}", model=model
                    ) from failure
            finally:
                self._router.release(node.name)
                span.end()

    async def _choose(self, model: str, request: GenerationRequest, tried: list[str]) -> InferenceNode:
        due = self._refreshed_at is None or anyio.current_time() - self._refreshed_at >= self.config.refresh_s
        if due or not self._router.knows(model):
            await self.refresh()
        try:
            return self._router.choose(model, request, exclude=tried)
        except NodeUnavailable:
            if tried:
                raise
            # Every node looked unhealthy: a heartbeat since the last refresh may have brought one back.
            await self.refresh()
            return self._router.choose(model, request, exclude=tried)

    async def _next(
        self, stream: AsyncIterator[GenerationChunk], node: InferenceNode, traced: otel_context.Context
    ) -> GenerationChunk | None:
        token = otel_context.attach(traced)
        try:
            with anyio.fail_after(self.config.chunk_timeout_s):
                return await anext(stream)
        except StopAsyncIteration:
            return None
        except TimeoutError as exc:
            raise _NodeFailed(f"no output for {self.config.chunk_timeout_s:g}s") from exc
        except NodeUnavailable as exc:
            raise _NodeFailed(exc.detail) from exc
        finally:
            otel_context.detach(token)

    def _client(self, node: InferenceNode) -> NodeClientLike:
        client = self._clients.get(node.address)
        if client is None:
            client = self._clients[node.address] = self._connect(node)
        return client

    async def aclose(self) -> None:
        """Close every node client. Idempotent."""
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.aclose()


async def _close(stream: AsyncIterator[GenerationChunk]) -> None:
    if isinstance(stream, AsyncGenerator):
        await stream.aclose()
