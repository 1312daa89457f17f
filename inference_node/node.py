"""A running inference node: load the engine, serve gRPC, register with the registry, heartbeat, shut down.

`running_node` is the lifecycle as an async context manager (tests, benchmarks, `meshgate up`);
`serve_node` runs it until SIGINT/SIGTERM (`meshgate node`). Shutdown takes the node out of the registry
first, so the router stops routing to it at once, then stops the server (cancelling in-flight calls).
"""

from __future__ import annotations

import contextlib
import logging
import re
import signal
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import anyio
import anyio.to_thread
import grpc.aio

from inference_node.engine import EngineClient
from inference_node.service import NodeServicer
from inference_node.weights import DEFAULT_MODEL
from meshgate.errors import ConfigError, NotFound, RegistryError
from registry.models import InferenceNode
from registry.store import RegistryStore

logger = logging.getLogger(__name__)

EngineName = Literal["llama.cpp", "vllm"]
NODE_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
# Clients ping every 10 s (client.CHANNEL_OPTIONS); allow it, so a quiet stream is not cut as abusive.
SERVER_OPTIONS: list[tuple[str, int]] = [
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_recv_ping_interval_without_data_ms", 5_000),
    ("grpc.http2.max_ping_strikes", 0),
]


@dataclass(frozen=True, slots=True)
class NodeConfig:
    name: str
    model: str = DEFAULT_MODEL
    engine: EngineName = "llama.cpp"
    weights: str | None = None
    """llama.cpp: a GGUF file (default: the built-in model's). vLLM: a model directory or hub id (required)."""
    host: str = "127.0.0.1"
    port: int = 8951
    """0 picks a free port; the bound one is registered and announced."""
    advertise_host: str | None = None
    """The host registered for the router to dial; default `host` (127.0.0.1 when `host` is a wildcard)."""
    capacity: int = 2
    max_queued: int = 64
    context_tokens: int = 2048
    heartbeat_s: float = 2.0
    shutdown_grace_s: float = 0.0
    """Seconds in-flight calls may finish after a stop signal before they are cancelled."""

    def __post_init__(self) -> None:
        if not NODE_NAME.match(self.name):
            raise ConfigError(
                f"node name {self.name!r}: a lowercase letter, then up to 30 lowercase letters, digits, '-'"
            )
        if self.capacity < 1 or self.heartbeat_s <= 0 or self.max_queued < 0:
            raise ConfigError("capacity must be >= 1, heartbeat_s > 0 and max_queued >= 0")


@dataclass(frozen=True, slots=True)
class RunningNode:
    config: NodeConfig
    address: str
    """host:port as registered."""
    port: int
    servicer: NodeServicer


async def load_engine(config: NodeConfig) -> EngineClient:
    """The configured engine with its weights loaded.

    Raises:
        ConfigError: unknown engine or missing weights.
        MissingDependency: `vllm` is not installed (extra `vllm`).
        EngineError: the engine failed to load the model.
    """
    if config.engine == "llama.cpp":
        from inference_node.cpu_engine import LlamaCppConfig, LlamaCppEngine

        weights = Path(config.weights) if config.weights else None
        return await LlamaCppEngine.open(
            LlamaCppConfig(
                model=config.model, weights=weights, context_tokens=config.context_tokens, parallel=config.capacity
            )
        )
    if config.engine == "vllm":
        from inference_node.vllm_engine import VllmConfig, VllmEngine

        if not config.weights:
            raise ConfigError("--engine vllm needs --weights: a model directory or Hugging Face model id")
        return await VllmEngine.open(
            VllmConfig(model=config.model, weights=config.weights, max_model_len=config.context_tokens)
        )
    raise ConfigError(f"unknown engine {config.engine!r}: llama.cpp or vllm")


@contextlib.asynccontextmanager
async def running_node(
    config: NodeConfig, store: RegistryStore, *, engine: EngineClient | None = None
) -> AsyncGenerator[RunningNode, None]:
    """Serve `engine` (default: `load_engine(config)`, closed on exit) registered in `store` until the block exits.

    Raises:
        ConfigError: the port cannot be bound, or as `load_engine`.
    """
    owned = engine is None
    engine = engine or await load_engine(config)
    server = grpc.aio.server(options=SERVER_OPTIONS)
    servicer = NodeServicer(engine, name=config.name, capacity=config.capacity, max_queued=config.max_queued)
    try:
        servicer.add_to_server(server)
        try:
            port = server.add_insecure_port(f"{config.host}:{config.port}")
        except RuntimeError as exc:
            raise ConfigError(f"cannot listen on {config.host}:{config.port}") from exc
        if port == 0:  # some grpc versions report a failed bind this way instead of raising
            raise ConfigError(f"cannot listen on {config.host}:{config.port}")
        await server.start()
        await servicer.set_serving(True)
        address = f"{_advertised_host(config)}:{port}"
        record = InferenceNode(
            name=config.name,
            model=engine.info.model,
            engine=engine.info.engine,
            address=address,
            capacity=config.capacity,
        )
        await anyio.to_thread.run_sync(store.upsert_node, record)
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(_heartbeat, store, record, servicer, config.heartbeat_s)
                yield RunningNode(config=config, address=address, port=port, servicer=servicer)
                tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await servicer.set_serving(False)
                await _deregister(store, config.name)
    finally:
        with anyio.CancelScope(shield=True):
            await server.stop(config.shutdown_grace_s)
            if owned:
                await engine.aclose()


async def serve_node(config: NodeConfig, store: RegistryStore, announce: Callable[[str], None] = print) -> int:
    """Run the node until SIGINT or SIGTERM; announce one line once it serves. Returns the exit status.

    Raises:
        ConfigError, MissingDependency, EngineError: as `running_node`.
    """
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with running_node(config, store) as node:
            info = node.servicer.engine.info
            announce(f"meshgate node {config.name} ({info.model} on {info.engine}) listening on {node.address}")
            async for received in signals:
                logger.info("node %s: %s, shutting down", config.name, signal.Signals(received).name)
                return 130 if received == signal.SIGINT else 0
    return 0


async def _heartbeat(store: RegistryStore, record: InferenceNode, servicer: NodeServicer, every_s: float) -> None:
    """Report the load every `every_s`; re-register if the registry lost the node; a registry outage is logged."""
    while True:
        await anyio.sleep(every_s)
        try:
            try:
                await anyio.to_thread.run_sync(store.report_load, record.name, servicer.in_flight, servicer.queued)
            except NotFound:
                await anyio.to_thread.run_sync(store.upsert_node, record)
        except RegistryError as exc:
            logger.warning("node %s: heartbeat failed: %s", record.name, exc.detail)


async def _deregister(store: RegistryStore, name: str) -> None:
    try:
        await anyio.to_thread.run_sync(store.remove_node, name)
    except NotFound:
        pass
    except RegistryError as exc:
        logger.warning("node %s: could not remove it from the registry: %s", name, exc.detail)


def _advertised_host(config: NodeConfig) -> str:
    if config.advertise_host:
        return config.advertise_host
    return "127.0.0.1" if config.host in ("", "0.0.0.0", "::", "[::]") else config.host
