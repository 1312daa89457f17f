"""Broker relay overhead: the example finance agent called directly and through the A2A broker, in one run.

Processes as a user would start them: `examples/agents/finance_agent.py` (ledger, organisation finance),
`python -m meshgate -c CONFIG up --port 0` with `broker: {enabled: true, port: 0}`, the agent registered by
`meshgate agents add ledger --url CARD_URL`, API keys from `meshgate keys create`. The shipped bundle and
the audit log stay on: a travel key sends `currency-quote` across organisations, so every relayed message
is decided and carries the cross-org obligations (`deny_file_parts`, `max_message_bytes`, `redact_parts`).
Prints message/send p50/p99 and messages/s per concurrency, direct vs broker, the ratio, and the time to
the first streamed event of a `transfer-funds` stream (finance key, same organisation), against the
issue's target (<= 2 ms added at p50).
Run: python bench/broker_relay.py [--calls N] [--concurrency 1,16] [--warmup 100] [--streams 200] [--json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Generator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import yaml
from a2a.client import A2ACardResolver, Client, ClientConfig, ClientFactory
from a2a.helpers import new_text_message
from a2a.types import Role, SendMessageRequest
from harness import meshgate_cli, stop

ROOT = Path(__file__).resolve().parents[1]
FINANCE_AGENT = ROOT / "examples" / "agents" / "finance_agent.py"
CALL_TIMEOUT_S = 30.0
START_TIMEOUT_S = 60.0
TARGET_ADDED_P50_MS = 2.0


@dataclass
class Result:
    target: str
    kind: str
    """`send` (a blocking message/send) or `first-event` (time to a stream's first event)."""
    concurrency: int
    calls: int
    wall_s: float
    per_s: float
    p50_ms: float
    p99_ms: float
    mean_ms: float


@dataclass(frozen=True)
class Endpoint:
    name: str
    card_url: str
    tenant: str
    """The A2A `tenant` that addresses the agent: "" direct, the agent id through the broker."""


@contextmanager
def started(argv: list[str], announce: str, workdir: Path, name: str) -> Generator[str]:
    """Run `argv` until the context exits; yield the URL ending the first stdout line starting with `announce`."""
    out_path, err_path = workdir / f"{name}.out", workdir / f"{name}.err"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        process = subprocess.Popen(argv, cwd=workdir, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            lines = [line for line in out_path.read_text().splitlines() if line.startswith(announce)]
            if lines:
                yield lines[0].rsplit(" ", 1)[-1]
                return
            if process.poll() is not None or time.monotonic() > deadline:
                tail = err_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{name} did not announce {announce!r} (exit {process.poll()}):\n{tail}")
            time.sleep(0.02)
    finally:
        stop(process)


def write_config(workdir: Path) -> Path:
    config = {
        "gateway": {"host": "127.0.0.1", "port": 0},
        "broker": {"enabled": True, "host": "127.0.0.1", "port": 0},
        "registry": {"url": "sqlite:///registry.db"},
        "policy": {"bundle": None},  # the shipped bundle
        "identity": {"allow_anonymous": False},
    }
    path = workdir / "meshgate.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def request(endpoint: Endpoint, text: str, skill: str) -> SendMessageRequest:
    message = new_text_message(text, role=Role.ROLE_USER)
    message.metadata.update({"skill": skill, "io.meshgate/skill": skill})
    return SendMessageRequest(tenant=endpoint.tenant, message=message)


async def measure(
    endpoint: Endpoint,
    token: str,
    kind: str,
    concurrency: int,
    calls: int,
    warmup: int,
) -> Result:
    """`concurrency` clients, each with its own connection pool, warm up together, then share `calls` timed calls."""
    streaming = kind == "first-event"
    latencies: list[float] = []
    finished: list[float] = []
    ready = 0
    all_ready, go, all_done = anyio.Event(), anyio.Event(), anyio.Event()

    def share(total: int, worker: int) -> int:
        return total // concurrency + (1 if worker < total % concurrency else 0)

    async def send(client: Client) -> float:
        """One call; the seconds to its answer (blocking send) or to its first event (stream, then drained)."""
        if streaming:
            req = request(endpoint, "transfer 10 USD from acct-1 to acct-2", "transfer-funds")
        else:
            req = request(endpoint, "100 EUR in USD", "currency-quote")
        with anyio.fail_after(CALL_TIMEOUT_S):
            start = time.perf_counter()
            first: float | None = None
            async for response in client.send_message(req):
                if first is None:
                    first = time.perf_counter() - start
                if response.WhichOneof("payload") is None:
                    raise RuntimeError(f"{endpoint.name}: an empty response")
            if first is None:
                raise RuntimeError(f"{endpoint.name}: no response")
            return first if streaming else time.perf_counter() - start

    async def worker(index: int) -> None:
        nonlocal ready
        headers = {"Authorization": f"Bearer {token}"}
        limits = httpx.Limits(max_connections=4, max_keepalive_connections=4)
        async with httpx.AsyncClient(headers=headers, timeout=CALL_TIMEOUT_S, limits=limits) as http:
            card = await A2ACardResolver(http, endpoint.card_url.rsplit("/.well-known", 1)[0]).get_agent_card()
            config = ClientConfig(streaming=streaming, httpx_client=http, supported_protocol_bindings=["JSONRPC"])
            client = ClientFactory(config).create(card)
            for _ in range(share(warmup, index)):
                await send(client)
            ready += 1
            if ready == concurrency:
                all_ready.set()
            await go.wait()
            own = [await send(client) for _ in range(share(calls, index))]
            finished.append(time.perf_counter())
            latencies.extend(own)
            if len(finished) == concurrency:
                all_done.set()
            await client.close()

    start = 0.0
    with anyio.fail_after(max(120.0, calls * 0.1)):
        async with anyio.create_task_group() as tg:
            for index in range(concurrency):
                tg.start_soon(worker, index)
            await all_ready.wait()
            start = time.perf_counter()
            go.set()
            await all_done.wait()
    wall = max(finished) - start
    latencies.sort()
    n = len(latencies)
    return Result(
        target=endpoint.name,
        kind=kind,
        concurrency=concurrency,
        calls=n,
        wall_s=wall,
        per_s=n / wall,
        p50_ms=latencies[n // 2] * 1000,
        p99_ms=latencies[min(n - 1, n * 99 // 100)] * 1000,
        mean_ms=sum(latencies) / n * 1000,
    )


def report(results: list[Result], audit: dict[str, Any]) -> dict[str, Any]:
    print(
        f"{'kind':<12} {'target':<7} {'conc':>4} {'calls':>6} {'msgs/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}"
    )
    for r in results:
        print(
            f"{r.kind:<12} {r.target:<7} {r.concurrency:>4} {r.calls:>6} {r.per_s:>8,.0f} {r.p50_ms:>8.2f}"
            f" {r.p99_ms:>8.2f} {r.mean_ms:>8.2f}"
        )
    print()
    by_key = {(r.kind, r.target, r.concurrency): r for r in results}
    comparisons: list[dict[str, Any]] = []
    for kind, c in sorted({(r.kind, r.concurrency) for r in results}, key=lambda k: (k[0] != "send", k[1])):
        direct, broker = by_key[(kind, "direct", c)], by_key[(kind, "broker", c)]
        added_p50, added_p99 = broker.p50_ms - direct.p50_ms, broker.p99_ms - direct.p99_ms
        ratio = broker.per_s / direct.per_s
        comparisons.append(
            {"kind": kind, "concurrency": c, "added_p50_ms": added_p50, "added_p99_ms": added_p99, "ratio": ratio}
        )
        print(
            f"{kind:<11} c={c:<3} broker adds {added_p50:+.2f} ms at p50, {added_p99:+.2f} ms at p99;"
            f" p50 ratio {broker.p50_ms / direct.p50_ms:.2f}x; throughput {ratio * 100:.1f} % of direct"
        )
    print()
    print("issue target: <= 2 ms added at p50 (message/send)")
    targets: list[dict[str, Any]] = []
    for comp in comparisons:
        if comp["kind"] != "send":
            continue
        ok = comp["added_p50_ms"] <= TARGET_ADDED_P50_MS
        targets.append({"concurrency": comp["concurrency"], "added_p50_ms": comp["added_p50_ms"], "pass": ok})
        print(
            f"  {'PASS' if ok else 'MISS'}  c={comp['concurrency']}: {comp['added_p50_ms']:+.2f} ms"
            f" (target <= {TARGET_ADDED_P50_MS} ms)"
        )
    print()
    print(
        f"audit: {audit['records']} records, {audit['allowed']} allowed a2a.message/* decisions"
        f" (broker calls made: {audit['expected']})"
    )
    return {"comparisons": comparisons, "targets": targets}


def audit_counts(config: Path) -> dict[str, int]:
    out = meshgate_cli(config, "audit", "--json", "--limit", "1000000")
    rows: list[dict[str, Any]] = [json.loads(line) for line in out.splitlines() if line.strip()]
    allowed = sum(1 for r in rows if r.get("allow") and str(r.get("action", "")).startswith("a2a.message/"))
    return {"records": len(rows), "allowed": allowed}


def parse_concurrency(text: str) -> list[int]:
    try:
        levels = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of integers: {text!r}") from None
    if not levels or min(levels) < 1:
        raise argparse.ArgumentTypeError("concurrency levels must be positive integers")
    return levels


async def run(
    args: argparse.Namespace, direct: Endpoint, broker: Endpoint, keys: dict[str, str]
) -> tuple[list[Result], int]:
    results: list[Result] = []
    made = 0
    phases: list[tuple[str, int, int]] = [
        ("send", c, args.calls if args.calls is not None else (1000 if c == 1 else 2000)) for c in args.concurrency
    ]
    phases.append(("first-event", 1, args.streams))
    for kind, c, calls in phases:
        for endpoint in (direct, broker):
            token = keys["travel"] if kind == "send" else keys["finance"]
            result = await measure(endpoint, token, kind, c, calls, args.warmup)
            if endpoint is broker:
                made += calls + args.warmup
            print(f"  measured {kind} {endpoint.name} c={c}: {result.per_s:,.0f}/s", file=sys.stderr, flush=True)
            results.append(result)
    return results, made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=None, help="timed sends (default: 1000 at c=1, 2000 otherwise)")
    parser.add_argument("--concurrency", type=parse_concurrency, default=[1, 16], help="default: 1,16")
    parser.add_argument("--warmup", type=int, default=100, help="untimed calls before each measurement")
    parser.add_argument("--streams", type=int, default=300, help="timed streams for time to first event (c=1)")
    parser.add_argument("--json", action="store_true", help="also print the results as one JSON object")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="meshgate-broker-bench-") as tmp:
        workdir = Path(tmp)
        config = write_config(workdir)
        agent_argv = [sys.executable, str(FINANCE_AGENT), "--host", "127.0.0.1", "--port", "0", "--no-grpc"]
        with started(agent_argv, "ledger listening on", workdir, "ledger") as agent_url:
            card_url = agent_url.rstrip("/") + "/.well-known/agent-card.json"
            meshgate_cli(config, "agents", "add", "ledger", "--url", card_url)
            keys = {
                org: meshgate_cli(config, "keys", "create", "--tenant", org, "--subject", "bench")
                .strip()
                .splitlines()[-1]
                for org in ("travel", "finance")
            }
            up = [sys.executable, "-m", "meshgate", "-c", str(config), "up", "--port", "0"]
            with started(up, "meshgate broker listening on", workdir, "meshgate") as broker_url:
                base = broker_url.rsplit("/a2a", 1)[0]
                direct = Endpoint("direct", card_url, "")
                broker = Endpoint("broker", base + "/.well-known/agent-card.json", "ledger")
                results, made = anyio.run(run, args, direct, broker, keys)
            audit = {**audit_counts(config), "expected": made}
    print(
        f"broker relay: finance agent direct vs through `meshgate up` (policy + audit on); python"
        f" {sys.version.split()[0]}"
    )
    summary = report(results, audit)
    if args.json:
        print(json.dumps({"results": [asdict(r) for r in results], **summary, "audit": audit}, indent=2))


if __name__ == "__main__":
    main()
