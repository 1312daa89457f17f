"""Prefix-affinity vs round-robin routing on a simulated fleet under a shared-prefix agent workload, in one run.

The router under test is the real `inference_node/router.py` (`NodeRouter`); only the fleet is modelled.
Each node has `slots` concurrent generations and a KV cache of `kv_blocks` blocks (256 prompt characters,
64 tokens each), an LRU of chain-hashed blocks like vLLM's prefix cache. Modelled TTFT = time queued for a
slot + prefill time per uncached prompt token × uncached tokens; a slot is then held for the decode.
Agents (Zipf-popular) each have a long system prompt + tool catalog prefix; requests add a short distinct
suffix and arrive as a Poisson process from a seeded RNG. Nodes heartbeat their real load every 5 s.
Prints cache-hit rate (prompt tokens served from cache), mean/p50/p99 TTFT, load spread, and the ratios.
Run: python bench/inference_routing.py [--nodes 4] [--agents 12] [--requests 4000] [--rates 6,8,10] [--json]
"""

from __future__ import annotations

import argparse
import heapq
import json
import random
import statistics
import sys
from collections import OrderedDict
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

# Runnable from a checkout without installing meshgate.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inference_node.engine import ChatMessage, GenerationRequest  # noqa: E402
from inference_node.router import NodeRouter, RouterConfig, RoutingPolicy, prefix_blocks, render_prompt  # noqa: E402
from registry.clock import format_time  # noqa: E402
from registry.models import InferenceNode  # noqa: E402

CHARS_PER_TOKEN = 4
BLOCK_CHARS = 256
BLOCK_TOKENS = BLOCK_CHARS // CHARS_PER_TOKEN
EPOCH = 1_750_000_000.0
HEARTBEAT_S = 5.0
WORDS = "search fetch book quote convert summarise plan route query schema field value account trip".split()


@dataclass(frozen=True)
class FleetModel:
    nodes: int = 4
    slots: int = 8
    """Generations a node runs at once."""
    kv_blocks: int = 400
    """KV-cache capacity per node in 64-token blocks (38,400 tokens)."""
    prefill_ms_per_token: float = 0.1
    cached_ms_per_token: float = 0.002
    decode_ms_per_token: float = 20.0


@dataclass(frozen=True)
class Workload:
    agents: int = 12
    requests: int = 4000
    rate_per_s: float = 8.0
    prefix_tokens: tuple[int, int] = (3000, 6000)
    suffix_tokens: tuple[int, int] = (50, 400)
    output_tokens: tuple[int, int] = (40, 200)
    zipf_s: float = 0.8
    seed: int = 7


@dataclass(frozen=True)
class Arrival:
    at: float
    request: GenerationRequest
    output_tokens: int


@dataclass
class Result:
    policy: str
    requests: int
    cache_hit_rate: float
    ttft_mean_ms: float
    ttft_p50_ms: float
    ttft_p99_ms: float
    requests_per_node: list[int]
    load_spread: float
    """max / min requests per node."""


class SimNode:
    """One modelled node: slots as a heap of the times they free up, and an LRU KV cache of block hashes."""

    def __init__(self, name: str, fleet: FleetModel) -> None:
        self.name = name
        self.fleet = fleet
        self.free_at = [0.0] * fleet.slots
        self.cache: OrderedDict[bytes, None] = OrderedDict()
        self.served = 0
        self.running: list[float] = []  # finish times, for the heartbeat's in-flight / queued

    def admit(self, now: float, blocks: list[bytes], prompt_tokens: int, output_tokens: int) -> tuple[float, int]:
        """Modelled TTFT in seconds and the prompt tokens served from cache."""
        matched = 0
        for digest in blocks:
            if digest not in self.cache:
                break
            matched += 1
        cached = min(matched * BLOCK_TOKENS, prompt_tokens)
        uncached = prompt_tokens - cached
        start = max(now, heapq.heappop(self.free_at))
        prefill = (uncached * self.fleet.prefill_ms_per_token + cached * self.fleet.cached_ms_per_token) / 1000
        finish = start + prefill + output_tokens * self.fleet.decode_ms_per_token / 1000
        heapq.heappush(self.free_at, finish)
        heapq.heappush(self.running, finish)
        # Tail first, prefix last: the prefix is the most recently used, so evicted last (vLLM frees tails first).
        for digest in reversed(blocks):
            self.cache[digest] = None
            self.cache.move_to_end(digest)
        while len(self.cache) > self.fleet.kv_blocks:
            self.cache.popitem(last=False)
        self.served += 1
        return start - now + prefill, cached

    def load(self, now: float) -> tuple[int, int]:
        """(in flight, queued) as its heartbeat would report them."""
        while self.running and self.running[0] <= now:
            heapq.heappop(self.running)
        in_flight = min(sum(1 for t in self.free_at if t > now), len(self.running))
        return in_flight, len(self.running) - in_flight


def workload_arrivals(work: Workload) -> list[Arrival]:
    rng = random.Random(work.seed)

    def text(tokens: int) -> str:
        words: list[str] = []
        size = 0
        while size < tokens * CHARS_PER_TOKEN:
            word = f"{rng.choice(WORDS)}{rng.randrange(1000)} "
            words.append(word)
            size += len(word)
        return "".join(words)[: tokens * CHARS_PER_TOKEN]

    prefixes = [
        f"You are agent {i}. Tools available:\n" + text(rng.randint(*work.prefix_tokens)) for i in range(work.agents)
    ]
    weights = [1 / (rank + 1) ** work.zipf_s for rank in range(work.agents)]
    arrivals: list[Arrival] = []
    now = 0.0
    for n in range(work.requests):
        now += rng.expovariate(work.rate_per_s)
        agent = rng.choices(range(work.agents), weights)[0]
        messages = (ChatMessage("system", prefixes[agent]), ChatMessage("user", text(rng.randint(*work.suffix_tokens))))
        request = GenerationRequest(request_id=f"r{n}", messages=messages)
        arrivals.append(Arrival(now, request, rng.randint(*work.output_tokens)))
    return arrivals


def simulate(policy: RoutingPolicy, arrivals: list[Arrival], fleet: FleetModel, balance: float) -> Result:
    clock = [EPOCH]
    config = RouterConfig(
        policy=policy, block_chars=BLOCK_CHARS, cache_blocks=fleet.kv_blocks, balance_threshold=balance
    )
    router = NodeRouter(config, clock=lambda: clock[0])
    sims = {f"node-{i}": SimNode(f"node-{i}", fleet) for i in range(fleet.nodes)}
    finishing: list[tuple[float, str]] = []  # (finish time, node): when the router releases it
    next_heartbeat = 0.0
    ttfts: list[float] = []
    cached_tokens = prompt_tokens = 0
    for arrival in arrivals:
        now = arrival.at
        clock[0] = EPOCH + now
        while finishing and finishing[0][0] <= now:
            router.release(heapq.heappop(finishing)[1])
        if now >= next_heartbeat:
            stamp = format_time(datetime.fromtimestamp(EPOCH + now, UTC))
            nodes = [
                InferenceNode(name, "agent-model", "sim", name, fleet.slots, *sim.load(now), heartbeat_at=stamp)
                for name, sim in sims.items()
            ]
            router.update_nodes(nodes)
            next_heartbeat = now + HEARTBEAT_S
        chosen = router.choose("agent-model", arrival.request)
        text = render_prompt(arrival.request)
        tokens = len(text) // CHARS_PER_TOKEN
        ttft, cached = sims[chosen.name].admit(now, prefix_blocks(text, BLOCK_CHARS), tokens, arrival.output_tokens)
        heapq.heappush(finishing, (now + ttft + arrival.output_tokens * fleet.decode_ms_per_token / 1000, chosen.name))
        ttfts.append(ttft * 1000)
        cached_tokens += cached
        prompt_tokens += tokens
    served = [sim.served for sim in sims.values()]
    ttfts.sort()
    return Result(
        policy=policy,
        requests=len(arrivals),
        cache_hit_rate=cached_tokens / prompt_tokens,
        ttft_mean_ms=statistics.fmean(ttfts),
        ttft_p50_ms=ttfts[len(ttfts) // 2],
        ttft_p99_ms=ttfts[min(len(ttfts) - 1, int(len(ttfts) * 0.99))],
        requests_per_node=served,
        load_spread=max(served) / max(min(served), 1),
    )


def run(fleet: FleetModel | None = None, work: Workload | None = None, balance: float = 0.5) -> list[Result]:
    """Both policies on the same arrivals: round-robin (the baseline) first, then affinity."""
    fleet, work = fleet or FleetModel(), work or Workload()
    arrivals = workload_arrivals(work)
    return [simulate(policy, arrivals, fleet, balance) for policy in ("round-robin", "affinity")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--agents", type=int, default=12)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--rates", default="6,8,10", help="arrivals per second (Poisson), one run each")
    parser.add_argument("--balance", type=float, default=0.5, help="the router's balance_threshold")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    fleet = FleetModel(nodes=args.nodes)
    runs: list[tuple[Workload, list[Result]]] = []
    for rate in (float(r) for r in args.rates.split(",")):
        work = Workload(agents=args.agents, requests=args.requests, rate_per_s=rate, seed=args.seed)
        runs.append((work, run(fleet, work, args.balance)))
    if args.json:
        print(
            json.dumps(
                [{"fleet": asdict(fleet), "workload": asdict(w), "results": [asdict(r) for r in rs]} for w, rs in runs]
            )
        )
        return
    work = runs[0][0]
    print(
        f"{fleet.nodes} nodes x {fleet.slots} slots, KV cache {fleet.kv_blocks} x {BLOCK_TOKENS}-token blocks each; "
        f"{work.agents} agents (Zipf {work.zipf_s:g}), prefixes {work.prefix_tokens[0]}-{work.prefix_tokens[1]} "
        "tokens, "
        f"suffixes {work.suffix_tokens[0]}-{work.suffix_tokens[1]}; {work.requests} requests, seed {work.seed}; "
        f"balance threshold {args.balance:g}"
    )
    header = f"{'rate/s':>6} {'policy':<12} {'cache hit':>9} {'TTFT mean':>10} {'p50':>8} {'p99':>8}"
    print(header + "  requests per node (max/min)")
    for work, results in runs:
        for r in results:
            spread = " ".join(str(n) for n in r.requests_per_node)
            print(
                f"{work.rate_per_s:>6g} {r.policy:<12} {r.cache_hit_rate:>9.1%} {r.ttft_mean_ms:>8.0f}ms "
                f"{r.ttft_p50_ms:>6.0f}ms {r.ttft_p99_ms:>6.0f}ms  {spread} ({r.load_spread:.2f})"
            )
        rr, affinity = results
        hits = affinity.cache_hit_rate / rr.cache_hit_rate
        print(
            f"{work.rate_per_s:>6g} affinity vs round-robin: cache hit {hits:.2f}x; "
            f"TTFT lower by {rr.ttft_mean_ms / affinity.ttft_mean_ms:.2f}x mean, "
            f"{rr.ttft_p50_ms / affinity.ttft_p50_ms:.2f}x p50, {rr.ttft_p99_ms / affinity.ttft_p99_ms:.2f}x p99"
        )


if __name__ == "__main__":
    main()
