"""Gateway overhead: the echo upstream called directly and through `meshgate up`, in one run.

Three processes share the machine: this client, the example echo server and the gateway, started as a user
would (`python -m meshgate -c CONFIG up --port 0`) with an API key, the shipped Rego bundle, the audit log
and OTLP tracing to a sink this script runs. Prints calls/s, p50/p99 per target and concurrency, the
added latency and throughput ratio against the issue's targets, and the CPU each process spent per call.
Run: python bench/gateway_overhead.py [--calls N] [--concurrency 1,32] [--warmup 200] [--json]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Generator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import yaml
from harness import meshgate_cli, stop
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

ROOT = Path(__file__).resolve().parents[1]
ECHO_SERVER = ROOT / "examples" / "upstreams" / "echo_server.py"
TEXT = "hello, meshgate"
CALL_TIMEOUT_S = 30.0
START_TIMEOUT_S = 30.0

# The targets: added latency at c=1, share of direct throughput at c=32 (on 2 cores).
TARGET_ADDED_P50_MS = 1.0
TARGET_ADDED_P99_MS = 3.0
TARGET_THROUGHPUT_PCT = 70.0


@dataclass
class Result:
    target: str
    concurrency: int
    calls: int
    wall_s: float
    calls_per_s: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    protocol_version: str
    cpu_us_per_call: dict[str, float] = field(default_factory=dict[str, float])
    """CPU time (user + system, all threads) each process spent per timed call."""


class OtlpSink:
    """A stand-in OTLP/HTTP collector: answers 200 to POST /v1/traces, counting requests and spans."""

    def __init__(self) -> None:
        self.requests = 0
        self.spans = 0
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802  (the name http.server dispatches to)
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if self.path != "/v1/traces":
                    self.send_response(404)
                    self.end_headers()
                    return
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                sink.record(body)
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  (the base class's name)
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}/v1/traces"
        self._thread = threading.Thread(target=self._server.serve_forever, name="otlp-sink", daemon=True)

    def record(self, body: bytes) -> None:
        request = ExportTraceServiceRequest.FromString(body)
        spans = sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
        with self._lock:
            self.requests += 1
            self.spans += spans

    def __enter__(self) -> OtlpSink:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def started(
    argv: list[str], *, announce: str, workdir: Path, name: str
) -> Generator[tuple[subprocess.Popen[bytes], str], None, None]:
    """Run `argv` until the context exits; yield the process and the URL ending its first stdout line.

    Output goes to files, not pipes, so a chatty child can never block on a full pipe.
    """
    out_path, err_path = workdir / f"{name}.out", workdir / f"{name}.err"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        process = subprocess.Popen(argv, cwd=workdir, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while b"\n" not in out_path.read_bytes():
            if process.poll() is not None or time.monotonic() > deadline:
                tail = err_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{name} did not announce its URL (exit {process.poll()}):\n{tail}")
            time.sleep(0.02)
        line = out_path.read_text().splitlines()[0]
        if not line.startswith(announce):
            raise RuntimeError(f"{name}: unexpected first line {line!r}")
        yield process, line.rsplit(" ", 1)[-1]
    finally:
        stop(process)


def write_config(workdir: Path, echo_url: str, otlp_endpoint: str) -> Path:
    config = {
        "gateway": {"host": "127.0.0.1", "port": 0},
        "registry": {"url": "sqlite:///registry.db"},  # relative: resolves against this config's directory
        "policy": {"bundle": None},  # the shipped bundle
        "identity": {"allow_anonymous": False},
        "telemetry": {"exporter": "otlp", "otlp_endpoint": otlp_endpoint},
        "upstreams": [{"name": "echo", "transport": "http", "url": echo_url}],
    }
    path = workdir / "meshgate.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU of a process and all its threads; `None` means this process."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(
    target: str,
    url: str,
    tool: str,
    token: str | None,
    concurrency: int,
    calls: int,
    warmup: int,
    pids: dict[str, int | None],
) -> Result:
    """`concurrency` clients, each on its own connection, warm up together, then share `calls` timed calls."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    latencies: list[float] = []
    finished: list[float] = []  # each worker's end, so client teardown stays out of the wall time
    versions: set[str] = set()
    ready = 0
    all_ready, go, all_done = anyio.Event(), anyio.Event(), anyio.Event()

    def share(total: int, worker: int) -> int:
        return total // concurrency + (1 if worker < total % concurrency else 0)

    async def call(client: Client) -> None:
        with anyio.fail_after(CALL_TIMEOUT_S):
            result = await client.call_tool(tool, {"text": TEXT})
        if result.is_error:
            raise RuntimeError(f"{target}: {tool} returned an error: {result.content}")

    async def worker(index: int) -> None:
        nonlocal ready
        async with create_mcp_http_client(headers=headers) as http:
            async with Client(streamable_http_client(url, http_client=http), cache=None) as client:
                versions.add(client.protocol_version)
                for _ in range(share(warmup, index)):
                    await call(client)
                ready += 1
                if ready == concurrency:
                    all_ready.set()
                await go.wait()
                own: list[float] = []
                for _ in range(share(calls, index)):
                    start = time.perf_counter()
                    await call(client)
                    own.append(time.perf_counter() - start)
                finished.append(time.perf_counter())
                latencies.extend(own)
                if len(finished) == concurrency:
                    all_done.set()

    cpu_before: dict[str, float] = {}
    cpu_after: dict[str, float] = {}
    start = 0.0
    with anyio.fail_after(max(120.0, calls * 0.05)):  # bounded, far above any plausible run
        async with anyio.create_task_group() as tg:
            for index in range(concurrency):
                tg.start_soon(worker, index)
            await all_ready.wait()
            cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
            start = time.perf_counter()
            go.set()
            await all_done.wait()  # sample CPU before the clients disconnect
            cpu_after = {name: cpu_seconds(pid) for name, pid in pids.items()}
    wall = max(finished) - start
    cpu = {name: (cpu_after[name] - cpu_before[name]) / calls * 1e6 for name in pids}
    latencies.sort()
    n = len(latencies)
    return Result(
        target=target,
        concurrency=concurrency,
        calls=n,
        wall_s=wall,
        calls_per_s=n / wall,
        p50_ms=latencies[n // 2] * 1000,
        p99_ms=latencies[min(n - 1, n * 99 // 100)] * 1000,
        mean_ms=sum(latencies) / n * 1000,
        protocol_version=",".join(sorted(versions)),
        cpu_us_per_call=cpu,
    )


async def wait_for_tool(url: str, token: str, tool: str) -> None:
    """The gateway announces its URL once upstreams made a first attempt; make sure `tool` is listed."""
    headers = {"Authorization": f"Bearer {token}"}
    with anyio.fail_after(START_TIMEOUT_S):
        async with create_mcp_http_client(headers=headers) as http:
            async with Client(streamable_http_client(url, http_client=http), cache=None) as client:
                while tool not in [t.name for t in (await client.list_tools()).tools]:
                    await anyio.sleep(0.1)


def parse_concurrency(text: str) -> list[int]:
    try:
        levels = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of integers: {text!r}") from None
    if not levels or min(levels) < 1:
        raise argparse.ArgumentTypeError("concurrency levels must be positive integers")
    return levels


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def report(results: list[Result], otlp: OtlpSink, audit: dict[str, Any], expected_calls: int) -> dict[str, Any]:
    """Print the table and the comparisons; return them as one JSON-ready object."""
    print(
        f"{'target':<9} {'conc':>4} {'calls':>6} {'calls/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}"
        f"   CPU µs/call: {'client':>7} {'gateway':>8} {'echo':>7}"
    )
    for r in results:
        cpu = r.cpu_us_per_call
        print(
            f"{r.target:<9} {r.concurrency:>4} {r.calls:>6} {r.calls_per_s:>9,.0f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f}"
            f" {r.mean_ms:>8.2f}                {cpu['client']:>7.0f} {cpu['gateway']:>8.0f} {cpu['echo']:>7.0f}"
        )
    print(
        "(CPU µs/call: user+system time each process spent during the timed phase, divided by its calls;"
        " the gateway spends ~0 in direct runs)"
    )

    by_key = {(r.target, r.concurrency): r for r in results}
    comparisons: list[dict[str, Any]] = []
    targets: list[dict[str, Any]] = []
    print()
    for c in sorted({r.concurrency for r in results}):
        direct, gateway = by_key[("direct", c)], by_key[("gateway", c)]
        added_p50, added_p99 = gateway.p50_ms - direct.p50_ms, gateway.p99_ms - direct.p99_ms
        ratio = gateway.calls_per_s / direct.calls_per_s * 100
        comparisons.append(
            {"concurrency": c, "added_p50_ms": added_p50, "added_p99_ms": added_p99, "throughput_pct_of_direct": ratio}
        )
        print(
            f"c={c:<3} gateway adds {added_p50:+.2f} ms at p50, {added_p99:+.2f} ms at p99;"
            f" throughput {ratio:.1f} % of direct"
        )
        if c == 1:
            targets.append(
                {
                    "name": "added p50 latency at c=1",
                    "target": f"<= {TARGET_ADDED_P50_MS} ms",
                    "measured": added_p50,
                    "pass": added_p50 <= TARGET_ADDED_P50_MS,
                }
            )
            targets.append(
                {
                    "name": "added p99 latency at c=1",
                    "target": f"<= {TARGET_ADDED_P99_MS} ms",
                    "measured": added_p99,
                    "pass": added_p99 <= TARGET_ADDED_P99_MS,
                }
            )
        if c == 32:
            targets.append(
                {
                    "name": "throughput at c=32 (% of direct, 2 cores)",
                    "target": f">= {TARGET_THROUGHPUT_PCT} %",
                    "measured": ratio,
                    "pass": ratio >= TARGET_THROUGHPUT_PCT,
                }
            )
    print()
    print("issue targets:")
    for t in targets:
        print(f"  {verdict(t['pass'])}  {t['name']}: {t['measured']:.2f} (target {t['target']})")
    if not targets:
        print("  none measured (the targets are defined at concurrency 1 and 32)")

    print()
    print(
        f"tracing: the OTLP sink received {otlp.requests} export requests holding {otlp.spans} spans"
        f" ({otlp.spans / max(expected_calls, 1):.2f} spans per gateway tools/call)"
    )
    print(
        f"audit: {audit['records']} records in the registry, {audit['allowed_tool_calls']} allowed tools/call"
        f" of echo_echo (gateway calls made: {expected_calls}); reasons: {audit['reasons']}"
    )
    return {"comparisons": comparisons, "targets": targets}


async def run_phases(
    args: argparse.Namespace,
    echo_url: str,
    gateway_url: str,
    token: str,
    pids: dict[str, int | None],
) -> list[Result]:
    results: list[Result] = []
    for c in args.concurrency:
        calls = args.calls if args.calls is not None else (2000 if c == 1 else 4000)
        targets = (("direct", echo_url, "echo", None), ("gateway", gateway_url, "echo_echo", token))
        for target, url, tool, key in targets:
            result = await measure(target, url, tool, key, c, calls, args.warmup, pids)
            print(f"  measured {target} c={c}: {result.calls_per_s:,.0f} calls/s", file=sys.stderr, flush=True)
            results.append(result)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--calls",
        type=int,
        default=None,
        help="timed calls per target and concurrency (default: 2000 at c=1, 4000 otherwise)",
    )
    parser.add_argument(
        "--concurrency",
        type=parse_concurrency,
        default=[1, 32],
        help="comma-separated concurrent clients (default: 1,32)",
    )
    parser.add_argument("--warmup", type=int, default=200, help="untimed calls before each measurement")
    parser.add_argument("--json", action="store_true", help="also print the results as one JSON object")
    args = parser.parse_args()

    cpus = os.cpu_count() or 0
    print("meshgate gateway overhead: echo upstream direct vs. through `meshgate up` (policy + audit + OTLP)")
    print(
        f"machine: {cpus} CPUs ({platform.machine()}), Python {platform.python_version()};"
        " client, gateway and echo upstream all run on it, so they compete for the same cores"
    )
    print(
        "gateway calls use an API key of tenant acme with role admin: the shipped policy lets tenant acme"
        " call only notes_*/toolbox_*, and echo_echo needs the admin grant"
    )
    print(
        f"concurrency {','.join(map(str, args.concurrency))}; each client has its own connection and calls"
        f" sequentially; {args.warmup} warm-up calls per measurement; tool argument {TEXT!r}"
    )
    print()

    with tempfile.TemporaryDirectory(prefix="meshgate-bench-") as tmp, OtlpSink() as otlp:
        workdir = Path(tmp)
        echo_argv = [sys.executable, str(ECHO_SERVER), "--transport", "http", "--host", "127.0.0.1", "--port", "0"]
        with started(echo_argv, announce="echo listening on ", workdir=workdir, name="echo") as (echo, echo_url):
            config = write_config(workdir, echo_url, otlp.endpoint)
            created = meshgate_cli(
                config, "keys", "create", "--tenant", "acme", "--subject", "bench", "--role", "admin"
            )
            token = next(line for line in created.splitlines() if line.startswith("mgk_"))
            gateway_argv = [sys.executable, "-m", "meshgate", "-c", str(config), "up", "--port", "0"]
            with started(gateway_argv, announce="meshgate gateway listening on ", workdir=workdir, name="gateway") as (
                gateway,
                gateway_url,
            ):
                anyio.run(wait_for_tool, gateway_url, token, "echo_echo")
                pids: dict[str, int | None] = {"client": None, "gateway": gateway.pid, "echo": echo.pid}
                results = anyio.run(run_phases, args, echo_url, gateway_url, token, pids)
            # The gateway has stopped: its audit log and span exporter flushed on shutdown.
            exit_code = gateway.returncode
        audit_lines = meshgate_cli(config, "audit", "--json", "--limit", "100000").splitlines()
    records = [json.loads(line) for line in audit_lines]
    allowed = [r for r in records if r["action"] == "mcp.tools/call" and r["resource"] == "echo_echo" and r["allow"]]
    audit = {
        "records": len(records),
        "allowed_tool_calls": len(allowed),
        "reasons": sorted({reason for r in allowed for reason in r["reasons"]}),
    }
    expected = sum(r.calls + args.warmup for r in results if r.target == "gateway")
    print()
    summary = report(results, otlp, audit, expected)
    # uvicorn re-raises SIGTERM once its graceful shutdown is done, hence -15 rather than 0.
    print(
        f"protocol negotiated: direct {results[0].protocol_version}, gateway {results[1].protocol_version};"
        f" gateway exit status after SIGTERM: {exit_code}"
    )
    if args.json:
        print(
            json.dumps(
                {
                    "machine": {"cpus": cpus, "python": platform.python_version(), "platform": platform.platform()},
                    "results": [asdict(r) for r in results],
                    **summary,
                    "otlp": {"export_requests": otlp.requests, "spans": otlp.spans},
                    "audit": audit,
                    "gateway_calls": expected,
                }
            )
        )


if __name__ == "__main__":
    main()
