from __future__ import annotations

import time

import anyio
import pytest

from inference_node.engine import GenerationRequest
from inference_node.router import NodeRouter, RouterConfig
from inference_node.routing import ModelRouter, NodeClientLike, RoutedChunk
from inference_node.testing import WORDS, FakeEngine
from meshgate.errors import EngineError, ModelNotFound, NodeUnavailable
from registry.models import InferenceNode
from registry.sqlite_store import SqliteStore

pytestmark = pytest.mark.anyio

REQUEST = GenerationRequest(request_id="r1", prompt="You are a helpful agent. " * 30 + "What is 6*7?")


class Fleet:
    """A registry of fake nodes (one per name) and the connections the router opened to them."""

    def __init__(self, engines: dict[str, FakeEngine], **config: float | str) -> None:
        self.store = SqliteStore(":memory:")
        self.engines = engines
        self.connected: list[str] = []
        for name in engines:
            self.store.upsert_node(InferenceNode(name, "m", "fake", f"{name}:7000", capacity=2))
        self.now = time.time()  # fixed from here on: the heartbeats just written stay fresh, backoffs never end
        router = NodeRouter(RouterConfig(**config), clock=lambda: self.now)  # pyright: ignore[reportArgumentType]
        self.router = ModelRouter(self.store, self.connect, router=router)

    def connect(self, node: InferenceNode) -> NodeClientLike:
        self.connected.append(node.address)
        return self.engines[node.name]


async def run(fleet: Fleet, request: GenerationRequest = REQUEST, model: str = "m") -> list[RoutedChunk]:
    with anyio.fail_after(5):
        return [c async for c in fleet.router.generate(request, model)]


async def test_a_generation_streams_every_chunk_with_its_node() -> None:
    fleet = Fleet({"a": FakeEngine()})
    chunks = await run(fleet)
    assert "".join(c.chunk.text for c in chunks) == "".join(WORDS)
    assert {c.node for c in chunks} == {"a"}
    assert chunks[-1].chunk.finish_reason == "stop"
    assert fleet.router.router.status()[0].routed_in_flight == 0


async def test_connections_are_opened_once_per_node_address_and_closed_at_the_end() -> None:
    fleet = Fleet({"a": FakeEngine(), "b": FakeEngine()}, policy="round-robin")
    for _ in range(4):
        await run(fleet)
    assert sorted(fleet.connected) == ["a:7000", "b:7000"]
    await fleet.router.aclose()
    assert all(e.closed for e in fleet.engines.values())


async def test_an_unknown_model_is_model_not_found() -> None:
    fleet = Fleet({"a": FakeEngine()})
    with pytest.raises(ModelNotFound) as caught:
        await run(fleet, model="nope")
    assert caught.value.code == "model_not_found"


async def test_a_node_registered_after_the_last_refresh_is_found_at_once() -> None:
    fleet = Fleet({"a": FakeEngine()}, refresh_s=3600)
    await run(fleet)
    fleet.engines["late"] = FakeEngine("other")
    fleet.store.upsert_node(InferenceNode("late", "other", "fake", "late:7000", capacity=1))
    assert {c.node for c in await run(fleet, model="other")} == {"late"}


async def test_failover_before_the_first_chunk_retries_on_another_node() -> None:
    fleet = Fleet({"a": FakeEngine(fail_after=0), "b": FakeEngine()}, policy="round-robin")
    chunks = await run(fleet)
    assert {c.node for c in chunks} == {"b"}
    assert len(fleet.engines["a"].requests) == 1
    (a, b) = fleet.router.router.status()
    assert not a.healthy and "fake node is down" in a.reason and b.healthy
    # The failed node stays out of the rotation for its backoff.
    await run(fleet)
    assert len(fleet.engines["a"].requests) == 1


async def test_when_both_tries_fail_the_error_is_node_unavailable() -> None:
    fleet = Fleet({"a": FakeEngine(fail_after=0), "b": FakeEngine(fail_after=0), "c": FakeEngine()})
    with pytest.raises(NodeUnavailable) as caught:
        await run(fleet)
    assert caught.value.code == "node_unavailable"
    assert len(fleet.engines["c"].requests) == 0


async def test_a_model_whose_only_node_failed_is_node_unavailable() -> None:
    fleet = Fleet({"a": FakeEngine(fail_after=0)})
    with pytest.raises(NodeUnavailable):
        await run(fleet)
    with pytest.raises(NodeUnavailable) as caught:
        await run(fleet)
    assert caught.value.data["model"] == "m"


async def test_failure_after_the_first_chunk_raises_node_unavailable_without_retrying() -> None:
    fleet = Fleet({"a": FakeEngine(fail_after=2), "b": FakeEngine()}, policy="round-robin")
    received: list[RoutedChunk] = []
    with pytest.raises(NodeUnavailable) as caught:
        with anyio.fail_after(5):
            async for chunk in fleet.router.generate(REQUEST, "m"):
                received.append(chunk)
    assert caught.value.data["node"] == "a"
    assert [c.chunk.text for c in received] == list(WORDS[:2])
    assert fleet.engines["b"].requests == []


async def test_a_node_that_stalls_times_out_instead_of_hanging() -> None:
    fleet = Fleet({"a": FakeEngine(stall_after=1)}, chunk_timeout_s=0.05)
    with pytest.raises(NodeUnavailable) as caught:
        await run(fleet)
    assert caught.value.data["node"] == "a"
    assert fleet.engines["a"].cancelled == 1


async def test_a_node_silent_before_its_first_chunk_is_failed_over() -> None:
    fleet = Fleet({"a": FakeEngine(stall_after=0), "b": FakeEngine()}, chunk_timeout_s=0.05, policy="round-robin")
    assert {c.node for c in await run(fleet)} == {"b"}
    assert fleet.engines["a"].cancelled == 1


async def test_an_engine_error_is_passed_through_and_not_retried() -> None:
    fleet = Fleet({"a": FakeEngine(fail_after=0, failure=lambda: EngineError("bad prompt")), "b": FakeEngine()})
    with pytest.raises(EngineError):
        await run(fleet)
    assert fleet.engines["b"].requests == []
    assert all(s.healthy for s in fleet.router.router.status())


async def test_closing_the_stream_early_cancels_the_node_stream() -> None:
    fleet = Fleet({"a": FakeEngine()})
    stream = fleet.router.generate(REQUEST, "m")
    with anyio.fail_after(5):
        first = await anext(stream)
        await stream.aclose()
    assert first.chunk.text == WORDS[0]
    assert (fleet.engines["a"].cancelled, fleet.engines["a"].completed) == (1, 0)
    assert fleet.router.router.status()[0].routed_in_flight == 0


async def test_a_cancelled_caller_cancels_the_node_stream() -> None:
    reached = anyio.Event()

    async def gate(index: int) -> None:
        if index == 1:
            reached.set()
            await anyio.Event().wait()

    fleet = Fleet({"a": FakeEngine(before_token=gate)})
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(run, fleet)
            await reached.wait()
            tg.cancel_scope.cancel()
    assert fleet.engines["a"].cancelled == 1


async def test_in_flight_generations_count_as_load_on_their_node() -> None:
    release = anyio.Event()
    started = anyio.Event()

    async def gate(index: int) -> None:
        started.set()
        await release.wait()

    fleet = Fleet({"a": FakeEngine(before_token=gate), "b": FakeEngine()}, balance_threshold=0.1)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(run, fleet)
            await started.wait()
            loads = {s.node.name: s.routed_in_flight for s in fleet.router.router.status()}
            assert loads == {"a": 1, "b": 0}
            # The same prefix would favour `a`, but it is a generation ahead of the threshold.
            assert {c.node for c in await run(fleet)} == {"b"}
            release.set()
