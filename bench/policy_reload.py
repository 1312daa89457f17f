"""Hot reload latency: from a write to the bundle until a client of a running gateway observes the new decision.

Starts `python -m meshgate -c CONFIG up --port 0` on a copy of the shipped bundle (the echo upstream as a stdio
child, anonymous callers are tenant `public`), then N times rewrites data/tenants.json to grant or revoke
`echo_echo` for `public` and calls echo_echo back to back until the answer flips. Each latency covers the
watcher's poll, loading the bundle, running its Rego tests, the swap, and the first decision on the new bundle.
Prints p50/p99/max against the issue's 1 s target.
Run: python bench/policy_reload.py [--edits 50] [--interval 0.25] [--json]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import shutil
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

# Runnable from a checkout without installing meshgate.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import anyio  # noqa: E402
import anyio.to_thread  # noqa: E402
import yaml  # noqa: E402
from mcp import Client  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402
from mcp.shared._httpx_utils import create_mcp_http_client  # noqa: E402
from mcp.shared.exceptions import MCPError  # noqa: E402

from bench.gateway_overhead import started  # noqa: E402
from policies import DEFAULT_BUNDLE  # noqa: E402
from policies.bundle import load_bundle  # noqa: E402
from policies.rego_tests import run_bundle_tests  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ECHO_SERVER = ROOT / "examples" / "upstreams" / "echo_server.py"
TOOL = "echo_echo"
TENANTS = "data/tenants.json"
TARGET_S = 1.0
OBSERVE_TIMEOUT_S = 30.0


def write_config(workdir: Path, interval_s: float) -> Path:
    config = {
        "gateway": {"host": "127.0.0.1", "port": 0},
        "registry": {"url": "sqlite:///registry.db"},
        "policy": {"bundle": "bundle", "watch": True, "watch_interval_s": interval_s},
        "identity": {"allow_anonymous": True},
        "upstreams": [{"name": "echo", "transport": "stdio", "command": ["python", str(ECHO_SERVER)]}],
    }
    path = workdir / "meshgate.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def write_grant(bundle: Path, allow: bool) -> None:
    """Rewrite data/tenants.json with `echo_echo` granted to tenant `public`, or not; one write."""
    data: dict[str, Any] = json.loads((DEFAULT_BUNDLE / TENANTS).read_text())
    if allow:
        data["meshgate"]["tenants"]["public"]["tools"].append(TOOL)
    (bundle / TENANTS).write_text(json.dumps(data, indent=2))


def health(base: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{base}/healthz", timeout=10) as response:  # noqa: S310  (loopback)
        return json.loads(response.read())


async def allowed(client: Client) -> bool:
    try:
        result = await client.call_tool(TOOL, {"text": "reload"})
    except MCPError as exc:
        if exc.code != -32030:  # anything but a policy deny is a broken run
            raise
        return False
    if result.is_error:
        raise RuntimeError(f"{TOOL} failed: {result.content}")
    return True


async def measure(url: str, bundle: Path, edits: int, interval_s: float) -> tuple[list[float], int]:
    """Latencies of `edits` alternating grant/revoke edits, and the calls made while waiting."""
    rng = random.Random(7)
    latencies: list[float] = []
    calls = 0
    async with create_mcp_http_client() as http:
        async with Client(streamable_http_client(url, http_client=http), cache=None) as client:
            with anyio.fail_after(OBSERVE_TIMEOUT_S):
                # Tenant public sees no echo tool, so wait on the gateway's own count for the stdio child's tools.
                while not (await anyio.to_thread.run_sync(health, url.removesuffix("/mcp")))["catalog"]["tools"]:
                    await anyio.sleep(0.05)
            state = await allowed(client)
            for _ in range(edits):
                # A random pause so each write lands at a different point of the watcher's poll cycle.
                await anyio.sleep(rng.uniform(0, 2 * interval_s))
                state = not state
                start = time.perf_counter()
                write_grant(bundle, state)
                with anyio.fail_after(OBSERVE_TIMEOUT_S):
                    while await allowed(client) != state:
                        calls += 1
                latencies.append(time.perf_counter() - start)
                calls += 1
    return latencies, calls


def percentile(sorted_values: list[float], pct: int) -> float:
    return sorted_values[min(len(sorted_values) - 1, len(sorted_values) * pct // 100)]


def validation_ms(bundle: Path, repeats: int = 20) -> float:
    """In this process: the median time to read the bundle twice and run its Rego tests, as the watcher does."""
    times: list[float] = []
    for _ in range(repeats):
        start = time.perf_counter()
        load_bundle(bundle)
        run_bundle_tests(load_bundle(bundle, include_tests=True))
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--edits", type=int, default=50, help="bundle edits to time (default 50)")
    parser.add_argument("--interval", type=float, default=0.25, help="policy.watch_interval_s (default 0.25)")
    parser.add_argument("--json", action="store_true", help="also print the results as one JSON object")
    args = parser.parse_args()

    print("meshgate policy hot reload: bundle write → first client call that sees the new decision")
    print(f"machine: {platform.machine()}, Python {platform.python_version()}; client and gateway share it")
    with tempfile.TemporaryDirectory(prefix="meshgate-reload-") as tmp:
        workdir = Path(tmp)
        bundle = workdir / "bundle"
        shutil.copytree(DEFAULT_BUNDLE / "rego", bundle / "rego")
        shutil.copytree(DEFAULT_BUNDLE / "data", bundle / "data")
        validate = validation_ms(bundle)
        config = write_config(workdir, args.interval)
        argv = [sys.executable, "-m", "meshgate", "-c", str(config), "up", "--port", "0"]
        with started(argv, announce="meshgate gateway listening on ", workdir=workdir, name="gateway") as (_, url):
            latencies, calls = anyio.run(measure, url, bundle, args.edits, args.interval)
            final = health(url.removesuffix("/mcp"))["policy"]
        rejected = (workdir / "gateway.err").read_text(errors="replace").count(" rejected; ")

    ordered = sorted(latencies)
    p50, p99, worst = percentile(ordered, 50), percentile(ordered, 99), ordered[-1]
    print(
        f"{len(latencies)} edits (alternately granting and revoking {TOOL} for tenant public), watch interval"
        f" {args.interval * 1000:.0f} ms; {calls} calls made while waiting"
    )
    print(f"in-process validation of the bundle (2 reads + its Rego tests): {validate:.1f} ms median")
    print(f"reload latency  p50 {p50 * 1000:.0f} ms   p99 {p99 * 1000:.0f} ms   max {worst * 1000:.0f} ms")
    print(
        f"target {TARGET_S:.0f} s: p99 is {p99 / TARGET_S:.2f}× the target, max {worst / TARGET_S:.2f}×"
        f" — {'PASS' if worst <= TARGET_S else 'MISS'}"
    )
    print(f"rejected reloads logged: {rejected}; last reload on /healthz: {final['last_reload']}")
    if args.json:
        print(
            json.dumps(
                {
                    "edits": len(latencies),
                    "interval_s": args.interval,
                    "latencies_s": latencies,
                    "p50_s": p50,
                    "p99_s": p99,
                    "max_s": worst,
                    "validation_ms": validate,
                    "target_s": TARGET_S,
                }
            )
        )


if __name__ == "__main__":
    main()
