"""The router core: picks an inference node per request by prefix affinity and load, or round-robin.

Pure and synchronous: no gRPC, no I/O, time through an injected clock. `routing.py` feeds it the
registered nodes and the outcome of each generation. The affinity policy follows SGLang's cache-aware
router and vLLM's prefix-cache block hashing, written by hand because neither ships as a library.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from inference_node.engine import GenerationRequest
from meshgate.errors import ModelNotFound, NodeUnavailable
from registry.models import InferenceNode

RoutingPolicy = Literal["affinity", "round-robin"]


@dataclass(frozen=True, slots=True)
class RouterConfig:
    policy: RoutingPolicy = "affinity"
    block_chars: int = 256
    """Prompt characters per hashed block (about 64 tokens): only whole blocks are matched, like vLLM's KV blocks."""
    cache_blocks: int = 8192
    """Blocks remembered per node: a model of what its KV cache holds, evicted least recently routed first."""
    balance_threshold: float = 0.5
    """How much more loaded (in fractions of capacity) the prefix-favoured node may be than the least loaded."""
    stale_after_s: float = 15.0
    """A node whose last heartbeat is older than this leaves the rotation."""
    failure_backoff_s: float = 1.0
    failure_backoff_max_s: float = 30.0
    refresh_s: float = 5.0
    """How often `routing.ModelRouter` re-reads the registered nodes."""
    chunk_timeout_s: float = 30.0
    """The longest `routing.ModelRouter` waits for a node's next chunk (the first includes prefill)."""

    def __post_init__(self) -> None:
        if self.block_chars < 1 or self.cache_blocks < 1:
            raise ValueError("block_chars and cache_blocks must be at least 1")


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """How the router sees one node right now."""

    node: InferenceNode
    healthy: bool
    reason: str
    """Why it is out of the rotation ("" when healthy)."""
    load: float
    """max(in-flight sent by this router, the node's reported in-flight + queued) / capacity."""
    routed_in_flight: int
    heartbeat_age_s: float | None
    cached_blocks: int
    """Prompt blocks the router believes the node holds in its KV cache."""


@dataclass(slots=True)
class _Failure:
    at: float
    until: float
    count: int
    reason: str


@dataclass(slots=True)
class _NodeState:
    node: InferenceNode
    heartbeat: float | None
    in_flight: int = 0
    # Ordered oldest -> most recently routed; values unused.
    blocks: OrderedDict[bytes, None] = field(default_factory=OrderedDict[bytes, None])
    failure: _Failure | None = None


def render_prompt(request: GenerationRequest) -> str:
    """The text whose prefix the engine caches: the prompt, or the messages serialised in order."""
    if request.prompt:
        return request.prompt
    return "".join(f"<|{m.role}|>\n{m.content}\n" for m in request.messages)


def prefix_blocks(text: str, block_chars: int) -> list[bytes]:
    """Chain hashes of the whole `block_chars` blocks of `text`: hash i covers blocks 0..i, as vLLM's block hashes.

    blake2b rather than `hash()`: stable across processes, so a benchmark run is reproducible.
    """
    hashes: list[bytes] = []
    previous = b""
    for start in range(0, len(text) - block_chars + 1, block_chars):
        previous = hashlib.blake2b(previous + text[start : start + block_chars].encode(), digest_size=16).digest()
        hashes.append(previous)
    return hashes


def heartbeat_seconds(stamp: str) -> float | None:
    """A registry time as POSIX seconds; None when empty or unreadable (the node is then treated as stale)."""
    try:
        return datetime.fromisoformat(stamp).timestamp() if stamp else None
    except ValueError:
        return None


class NodeRouter:
    """Chooses a node for each generation and keeps the per-node state that choice needs.

    Not thread-safe; the async layer calls it from one event loop.
    """

    def __init__(self, config: RouterConfig | None = None, clock: Callable[[], float] = time.time) -> None:
        """`clock` returns POSIX seconds: heartbeats are registry wall-clock times."""
        self.config = config or RouterConfig()
        self._clock = clock
        self._nodes: dict[str, _NodeState] = {}
        self._last_choice: dict[str, str] = {}  # model -> node name, for round-robin

    def update_nodes(self, nodes: Sequence[InferenceNode]) -> None:
        """Replace the known nodes with the registry's list; a node kept keeps its cache model, load and failure."""
        fresh: dict[str, _NodeState] = {}
        for node in nodes:
            state = self._nodes.get(node.name)
            heartbeat = heartbeat_seconds(node.heartbeat_at)
            if state is None or state.node.model != node.model or state.node.address != node.address:
                # A node that moved or changed model is a different cache; routed-but-unfinished work still counts.
                fresh[node.name] = _NodeState(node, heartbeat, in_flight=state.in_flight if state else 0)
            else:
                state.node, state.heartbeat = node, heartbeat
                fresh[node.name] = state
        # Generations still in flight on a node that left the registry are released into nothing.
        self._nodes = fresh

    def models(self) -> list[str]:
        return sorted({s.node.model for s in self._nodes.values()})

    def knows(self, model: str) -> bool:
        return any(s.node.model == model for s in self._nodes.values())

    def choose(self, model: str, request: GenerationRequest, *, exclude: Collection[str] = ()) -> InferenceNode:
        """The node to run `request` on; counts it as in flight there until `release(node.name)`.

        Raises:
            ModelNotFound: no registered node serves `model`.
            NodeUnavailable: nodes serve it, but none is healthy (or all are in `exclude`).
        """
        now = self._clock()
        serving = [s for s in self._nodes.values() if s.node.model == model]
        if not serving:
            raise ModelNotFound(f"no inference node serves model {model!r}", model=model)
        candidates = [s for s in serving if s.node.name not in exclude and self._health(s, now)[0]]
        if not candidates:
            reasons = sorted(f"{s.node.name}: {self._health(s, now)[1] or 'already tried'}" for s in serving)
            raise NodeUnavailable(
                f"no healthy inference node for model {model!r} ({'; '.join(reasons)})", model=model, nodes=reasons
            )
        candidates.sort(key=lambda s: s.node.name)
        blocks = prefix_blocks(render_prompt(request), self.config.block_chars)
        if self.config.policy == "round-robin":
            chosen = self._next_after(model, candidates)
        else:
            chosen = self._by_affinity(model, candidates, blocks)
        self._last_choice[model] = chosen.node.name
        self._remember(chosen, blocks)
        chosen.in_flight += 1
        return chosen.node

    def release(self, name: str) -> None:
        """One generation routed to `name` finished (or failed)."""
        state = self._nodes.get(name)
        if state is not None and state.in_flight > 0:
            state.in_flight -= 1

    def mark_failed(self, name: str, reason: str) -> None:
        """Take a node out of the rotation for a backoff that doubles with each consecutive failure, capped.

        It comes back when the backoff ends or when it heartbeats after the failure.
        """
        state = self._nodes.get(name)
        if state is None:
            return
        now = self._clock()
        count = 1 if state.failure is None else state.failure.count + 1
        backoff = min(self.config.failure_backoff_s * 2 ** (count - 1), self.config.failure_backoff_max_s)
        state.failure = _Failure(at=now, until=now + backoff, count=count, reason=reason)
        # What it cached may be gone with it (a restart); better to re-learn than to chase a phantom prefix.
        state.blocks.clear()

    def mark_ok(self, name: str) -> None:
        """The node answered: forget its failures, so the next one starts from the initial backoff."""
        state = self._nodes.get(name)
        if state is not None:
            state.failure = None

    def status(self) -> list[NodeStatus]:
        """Every known node, by name, as the router sees it now."""
        now = self._clock()
        found: list[NodeStatus] = []
        for state in sorted(self._nodes.values(), key=lambda s: s.node.name):
            healthy, reason = self._health(state, now)
            age = None if state.heartbeat is None else max(now - state.heartbeat, 0.0)
            found.append(
                NodeStatus(state.node, healthy, reason, self._load(state), state.in_flight, age, len(state.blocks))
            )
        return found

    def _health(self, state: _NodeState, now: float) -> tuple[bool, str]:
        if state.heartbeat is None:
            return False, "no heartbeat"
        age = now - state.heartbeat
        if age > self.config.stale_after_s:
            return False, f"stale: last heartbeat {age:.0f}s ago"
        failure = state.failure
        if failure is not None and now < failure.until and state.heartbeat <= failure.at:
            return False, f"failed: {failure.reason} (retry in {failure.until - now:.1f}s)"
        return True, ""

    @staticmethod
    def _load(state: _NodeState) -> float:
        # The heartbeat's figure already includes this router's own generations, only older: adding the two
        # would count ours twice. Ours is exact and current; the report adds what other routers sent.
        reported = state.node.in_flight + state.node.queued
        return max(state.in_flight, reported) / max(state.node.capacity, 1)

    def _by_affinity(self, model: str, candidates: list[_NodeState], blocks: list[bytes]) -> _NodeState:
        loads = {s.node.name: self._load(s) for s in candidates}
        least = min(loads.values())
        matched = {s.node.name: _matched(s, blocks) for s in candidates}
        longest = max(matched.values())
        if longest > 0:
            favoured = [s for s in candidates if matched[s.node.name] == longest]
            best_load = min(loads[s.node.name] for s in favoured)
            # A full node queues the request behind whole generations, which costs more than the prefill a
            # cache hit saves, so a saturated favourite yields to any node with a free slot.
            saturated = best_load >= 1.0 > least
            if best_load - least <= self.config.balance_threshold and not saturated:
                return self._next_after(model, [s for s in favoured if loads[s.node.name] == best_load])
        return self._next_after(model, [s for s in candidates if loads[s.node.name] == least])

    def _next_after(self, model: str, tied: list[_NodeState]) -> _NodeState:
        """The first of `tied` (sorted by name) after the node last chosen for `model`, wrapping around."""
        last = self._last_choice.get(model, "")
        return next((s for s in tied if s.node.name > last), tied[0])

    def _remember(self, state: _NodeState, blocks: list[bytes]) -> None:
        cache = state.blocks
        # Newest-last order with the first block touched last: eviction takes a prompt's tail before its
        # prefix, which is what a KV cache that frees blocks tail first keeps (vLLM's free-block queue).
        for digest in reversed(blocks):
            cache[digest] = None
            cache.move_to_end(digest)
        while len(cache) > self.config.cache_blocks:
            cache.popitem(last=False)


def _matched(state: _NodeState, blocks: list[bytes]) -> int:
    """Leading blocks of the prompt the node is believed to hold; chain hashes make each hit a whole-prefix hit."""
    count = 0
    for digest in blocks:
        if digest not in state.blocks:
            break
        count += 1
    return count
