from __future__ import annotations

from dataclasses import replace

import pytest

from inference_node.engine import ChatMessage, GenerationRequest
from inference_node.router import NodeRouter, RouterConfig, prefix_blocks, render_prompt
from meshgate.errors import ModelNotFound, NodeUnavailable
from registry.clock import format_time
from registry.models import InferenceNode

START = 1_750_000_000.0
SYSTEM_A = "You are agent A. Tools: " + "search(query), fetch(url), " * 40
SYSTEM_B = "You are agent B, a planner. Tools: " + "book(trip), quote(currency), " * 40


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def stamp(seconds: float) -> str:
    from datetime import UTC, datetime

    return format_time(datetime.fromtimestamp(seconds, UTC))


def node(
    name: str, *, model: str = "m", capacity: int = 4, heartbeat: float = START, **changes: object
) -> InferenceNode:
    base = InferenceNode(name, model, "fake", f"{name}:1", capacity, heartbeat_at=stamp(heartbeat))
    return replace(base, **changes)  # pyright: ignore[reportArgumentType]


def ask(system: str, question: str) -> GenerationRequest:
    messages = (ChatMessage("system", system), ChatMessage("user", question))
    return GenerationRequest(request_id=question, messages=messages)


def router(*nodes: InferenceNode, clock: Clock | None = None, **config: object) -> NodeRouter:
    r = NodeRouter(RouterConfig(**config), clock=clock or Clock())  # pyright: ignore[reportArgumentType]
    r.update_nodes(list(nodes) or [node("a"), node("b"), node("c")])
    return r


def test_blocks_are_chain_hashed_so_a_shared_prefix_shares_its_leading_hashes() -> None:
    one = prefix_blocks("x" * 512 + "tail one" + "y" * 300, 256)
    two = prefix_blocks("x" * 512 + "tail two" + "y" * 300, 256)
    assert len(one) == 3
    assert one[:2] == two[:2] and one[2] != two[2]
    # Chain hashing: the same block after a different prefix is a different hash.
    assert prefix_blocks("a" * 256 + "x" * 256, 256)[1] != prefix_blocks("b" * 256 + "x" * 256, 256)[1]
    assert prefix_blocks("short", 256) == []


def test_chat_messages_render_in_order_with_their_roles() -> None:
    text = render_prompt(ask("sys", "hi"))
    assert text.index("sys") < text.index("hi") and "system" in text and "user" in text
    assert render_prompt(GenerationRequest(request_id="r", prompt="raw")) == "raw"


def test_affinity_sends_shared_prefix_requests_to_the_same_node() -> None:
    r = router()
    first = r.choose("m", ask(SYSTEM_A, "q1")).name
    r.release(first)
    chosen = {r.choose("m", ask(SYSTEM_A, f"question {i}")).name for i in range(2)}
    assert chosen == {first}


def test_affinity_spreads_different_prefixes_over_idle_nodes() -> None:
    r = router()
    a = r.choose("m", ask(SYSTEM_A, "q"))
    b = r.choose("m", ask(SYSTEM_B, "q"))
    assert a.name != b.name
    assert r.choose("m", ask(SYSTEM_B, "again")).name == b.name


def test_affinity_yields_to_load_when_the_favoured_node_is_overloaded() -> None:
    r = router(balance_threshold=0.5)
    favoured = r.choose("m", ask(SYSTEM_A, "warm")).name
    # Capacity 4: two more in flight is 0.75 above the idle nodes, past the 0.5 threshold.
    r.choose("m", ask(SYSTEM_A, "busy 1"))
    r.choose("m", ask(SYSTEM_A, "busy 2"))
    assert r.choose("m", ask(SYSTEM_A, "overflow")).name != favoured


def test_a_full_favoured_node_yields_to_a_node_with_a_free_slot_whatever_the_threshold() -> None:
    r = router(node("a", capacity=1), node("b", capacity=1), balance_threshold=10)
    favoured = r.choose("m", ask(SYSTEM_A, "warm")).name
    assert r.choose("m", ask(SYSTEM_A, "again")).name != favoured


def test_the_heartbeat_load_counts_when_it_exceeds_what_this_router_sent() -> None:
    r = router(node("a", in_flight=3, queued=2), node("b"))
    assert r.choose("m", ask(SYSTEM_A, "q")).name == "b"
    statuses = {s.node.name: s for s in r.status()}
    assert statuses["a"].load == pytest.approx(5 / 4)
    assert statuses["b"].routed_in_flight == 1


def test_released_generations_stop_counting_as_load() -> None:
    r = router(balance_threshold=0.0)
    favoured = r.choose("m", ask(SYSTEM_A, "warm")).name
    r.release(favoured)
    assert r.choose("m", ask(SYSTEM_A, "again")).name == favoured


def test_round_robin_cycles_through_the_nodes_in_name_order() -> None:
    r = router(policy="round-robin")
    picks = [r.choose("m", ask(SYSTEM_A, f"q{i}")).name for i in range(7)]
    assert picks == ["a", "b", "c", "a", "b", "c", "a"]


def test_each_model_has_its_own_nodes() -> None:
    r = router(node("a"), node("b", model="other"))
    assert r.choose("other", ask(SYSTEM_A, "q")).name == "b"
    assert r.models() == ["m", "other"]


def test_a_stale_node_leaves_the_rotation_and_returns_with_a_fresh_heartbeat() -> None:
    clock = Clock()
    r = router(node("a"), node("b", heartbeat=START - 60), clock=clock, policy="round-robin", stale_after_s=15)
    assert {r.choose("m", ask(SYSTEM_A, f"q{i}")).name for i in range(4)} == {"a"}
    assert [(s.node.name, s.healthy) for s in r.status()] == [("a", True), ("b", False)]
    r.update_nodes([node("a"), node("b", heartbeat=START)])
    assert {r.choose("m", ask(SYSTEM_A, f"q{i}")).name for i in range(4)} == {"a", "b"}


def test_a_failed_node_leaves_the_rotation_until_its_backoff_ends() -> None:
    clock = Clock()
    r = router(node("a"), node("b"), clock=clock, policy="round-robin", failure_backoff_s=1, failure_backoff_max_s=3)
    r.mark_failed("b", "connection refused")
    assert {r.choose("m", ask(SYSTEM_A, f"q{i}")).name for i in range(3)} == {"a"}
    assert "connection refused" in r.status()[1].reason
    clock.now += 1.0
    assert {r.choose("m", ask(SYSTEM_A, f"r{i}")).name for i in range(2)} == {"a", "b"}


def test_the_failure_backoff_doubles_and_is_capped() -> None:
    clock = Clock()
    r = router(node("a"), clock=clock, failure_backoff_s=1, failure_backoff_max_s=3)
    for expected in (1.0, 2.0, 3.0, 3.0):
        r.mark_failed("a", "down")
        clock.now += expected - 0.01
        assert not r.status()[0].healthy
        clock.now += 0.01
        assert r.status()[0].healthy
    r.mark_ok("a")
    r.mark_failed("a", "down")
    clock.now += 1.0
    assert r.status()[0].healthy


def test_a_failed_node_returns_on_a_heartbeat_newer_than_the_failure() -> None:
    clock = Clock()
    r = router(node("a"), clock=clock, failure_backoff_s=30)
    clock.now += 2
    r.mark_failed("a", "down")
    r.update_nodes([node("a", heartbeat=START + 1)])
    assert not r.status()[0].healthy
    clock.now += 1
    r.update_nodes([node("a", heartbeat=clock.now)])
    assert r.choose("m", ask(SYSTEM_A, "q")).name == "a"


def test_an_unknown_model_is_model_not_found() -> None:
    with pytest.raises(ModelNotFound) as caught:
        router().choose("nope", ask(SYSTEM_A, "q"))
    assert caught.value.code == "model_not_found"


def test_a_model_without_a_healthy_node_is_node_unavailable_naming_it() -> None:
    r = router(node("a"), node("b"))
    r.mark_failed("a", "down")
    with pytest.raises(NodeUnavailable) as caught:
        r.choose("m", ask(SYSTEM_A, "q"), exclude=["b"])
    assert caught.value.code == "node_unavailable"
    assert caught.value.data["model"] == "m"


def test_a_node_without_a_heartbeat_is_not_routed_to() -> None:
    r = router(node("a", heartbeat_at=""))
    with pytest.raises(NodeUnavailable):
        r.choose("m", ask(SYSTEM_A, "q"))


def test_the_cache_model_is_bounded_and_keeps_a_prompts_prefix_over_its_tail() -> None:
    r = router(node("a"), node("b"), cache_blocks=2)
    home = r.choose("m", ask(SYSTEM_A, "q")).name
    r.release(home)
    assert len(prefix_blocks(render_prompt(ask(SYSTEM_A, "q")), 256)) == 4
    assert [s.cached_blocks for s in r.status() if s.node.name == home] == [2]
    # Only 2 of its 4 blocks are remembered, and they are the leading ones: the next request still matches.
    assert r.choose("m", ask(SYSTEM_A, "q2")).name == home
