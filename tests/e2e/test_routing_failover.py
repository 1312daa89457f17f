"""The router over two real nodes: a dead node leaves the rotation, and one that dies mid-generation fails fast.

Two `meshgate node` processes serve SmolLM2 and register in one SQLite registry; `ModelRouter` reaches them
with the real gRPC `NodeClient`.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import AsyncGenerator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import anyio
import pytest
from anyio.abc import Process

from inference_node.client import NodeClient
from inference_node.engine import ChatMessage, GenerationRequest
from inference_node.routing import ModelRouter, RoutingConfig
from meshgate.errors import MeshError, NodeUnavailable
from registry.sqlite_store import SqliteStore
from tests.e2e.announced import announced

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


@asynccontextmanager
async def node_process(registry: Path, name: str) -> AsyncGenerator[Process, None]:
    argv = [sys.executable, "-m", "meshgate", "node", "--name", name, "--port", "0", "--capacity", "1"]
    env = {"MESHGATE_REGISTRY_URL": f"sqlite:///{registry}", "PATH": "/usr/bin:/bin"}
    async with announced(argv, env=env) as (process, _):
        yield process


def request(text: str, max_tokens: int) -> GenerationRequest:
    return GenerationRequest(request_id=text, messages=(ChatMessage("user", text),), max_tokens=max_tokens)


@asynccontextmanager
async def two_nodes(tmp_path: Path) -> AsyncGenerator[tuple[ModelRouter, dict[str, Process]], None]:
    registry = tmp_path / "registry.db"
    store = SqliteStore(registry)
    router = ModelRouter(
        store,
        connect=lambda node: NodeClient(node.address, node.model),
        config=RoutingConfig(policy="round-robin", chunk_timeout_s=20),
    )
    try:
        async with AsyncExitStack() as stack:
            processes = {n: await stack.enter_async_context(node_process(registry, n)) for n in ("node-a", "node-b")}
            yield router, processes
    finally:
        await router.aclose()
        store.close()


async def test_a_killed_node_leaves_the_rotation_and_requests_go_to_the_other(tmp_path: Path) -> None:
    async with two_nodes(tmp_path) as (router, processes):
        processes["node-a"].send_signal(signal.SIGKILL)  # still registered, with a fresh heartbeat
        await processes["node-a"].wait()
        served: list[str] = []
        for i in range(3):  # round-robin would send one of them to node-a; each is retried on node-b
            with anyio.fail_after(60):
                chunks = [routed async for routed in router.generate(request(f"Say {i}.", 4), "smollm2")]
            served.append(chunks[-1].node)
            assert chunks[-1].chunk.finish_reason is not None
        assert served == ["node-b"] * 3
        status = {s.node.name: s for s in await router.status()}
        assert not status["node-a"].healthy and status["node-b"].healthy


async def test_a_node_that_dies_mid_generation_fails_the_request_with_node_unavailable(tmp_path: Path) -> None:
    async with two_nodes(tmp_path) as (router, processes):
        with pytest.raises(NodeUnavailable) as failed:
            with anyio.fail_after(60):
                stream = router.generate(request("Tell a long story about the sea.", 512), "smollm2")
                async for routed in stream:
                    if routed.chunk.text and processes[routed.node].returncode is None:
                        processes[routed.node].send_signal(signal.SIGKILL)  # output has started: no retry
        assert failed.value.data.get("node") in processes
        # The mesh keeps serving: the next request goes to the surviving node.
        with anyio.fail_after(60):
            chunks = [routed async for routed in router.generate(request("Say hi.", 4), "smollm2")]
        assert chunks[-1].node != failed.value.data["node"]
        assert isinstance(failed.value, MeshError) and failed.value.code == "node_unavailable"
