"""Decisions per second and p50/p99 latency of the shipped bundle, in-process, one thread.

Two inputs: a tools/call and a tools/list of 20 candidates. Measures the decision point as the
gateway calls it on both engines (regorus, served by default; OPA's Go evaluator, fetched by
scripts/fetch_opa.py, `policy.engine: opa`), and, for the ratio, regorus's compiled Program/Rvm
path that we do not serve. Prints the p99 against the issue's 100 µs in-process target.
Run: python bench/policy_decisions.py --n 10000
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

# Runnable from a checkout without installing meshgate.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import regorus  # noqa: E402  # pyright: ignore[reportMissingTypeStubs]

from policies import DEFAULT_BUNDLE, PolicyDecisionPoint, RegorusEngine  # noqa: E402
from policies.bundle import load_bundle  # noqa: E402
from policies.input import PolicyInput  # noqa: E402
from policies.opa_engine import OpaEngine  # noqa: E402
from policies.pdp import DEFAULT_QUERY  # noqa: E402
from scripts.fetch_opa import fetch as fetch_opa  # noqa: E402

TARGET_P99_US = 100.0

CONTEXT = {
    "time": "2025-06-01T12:00:00.000Z",
    "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
    "request_size": 182,
    "client": "claude-code",
    "protocol_version": "2025-06-18",
}

CALL: PolicyInput = {
    "version": 1,
    "subject": {"id": "alice@acme.example", "tenant": "acme", "roles": ["editor"], "issuer": "jwt:https://idp"},
    "action": "mcp.tools/call",
    "resource": {"kind": "tool", "id": "notes_search_notes", "server": "notes", "name": "search_notes"},
    "arguments": {"query": "quarterly planning", "limit": 20, "tags": ["q3", "planning"]},
    "context": CONTEXT,  # pyright: ignore[reportAssignmentType]
}

LIST: PolicyInput = {
    "version": 1,
    "subject": {"id": "bob@globex.example", "tenant": "globex", "roles": [], "issuer": "jwt:https://idp"},
    "action": "mcp.tools/list",
    "resource": {
        "kind": "catalog",
        "id": "tools",
        "items": [f"notes_tool_{i}" for i in range(8)]
        + [f"toolbox_tool_{i}" for i in range(8)]
        + [f"weather_tool_{i}" for i in range(4)],
    },
    "arguments": {},
    "context": CONTEXT,  # pyright: ignore[reportAssignmentType]
}


def measure(run: Callable[[], object], n: int) -> tuple[float, float, float]:
    """(decisions/s, p50 µs, p99 µs) over `n` calls after a warm-up."""
    for _ in range(min(n, 500)):
        run()
    samples: list[int] = []
    start = time.perf_counter_ns()
    for _ in range(n):
        t0 = time.perf_counter_ns()
        run()
        samples.append(time.perf_counter_ns() - t0)
    total_s = (time.perf_counter_ns() - start) / 1e9
    samples.sort()
    return n / total_s, samples[n // 2] / 1000, samples[min(n - 1, n * 99 // 100)] / 1000


def compiled_vm(input_doc: PolicyInput) -> Callable[[], object]:
    bundle = load_bundle(DEFAULT_BUNDLE)
    modules = [(m.name, m.source) for m in bundle.modules]
    rvm = cast(Any, regorus)  # no stubs for the compiled module
    program = rvm.Program.compile_from_modules(bundle.data_json, modules, [DEFAULT_QUERY])
    vm = rvm.Rvm()
    vm.load_program(program)
    vm.set_data_json(bundle.data_json)

    def run() -> object:
        vm.set_input_json(json.dumps(input_doc))
        return json.loads(vm.execute_entry_point(DEFAULT_QUERY))

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=10_000, help="decisions per measurement")
    n = parser.parse_args().n

    engine = RegorusEngine(DEFAULT_BUNDLE)
    pdp = PolicyDecisionPoint(engine)
    opa = PolicyDecisionPoint(OpaEngine(DEFAULT_BUNDLE, fetch_opa()))
    print(f"bundle {DEFAULT_BUNDLE} revision {engine.revision}, n={n}, one thread")
    print(f"{'input':<12} {'path':<34} {'decisions/s':>12} {'p50 µs':>8} {'p99 µs':>8}")
    for label, doc in (("tools/call", CALL), ("tools/list20", LIST)):
        assert pdp.decide(doc).error == ""
        rows: list[tuple[str, Callable[[], object]]] = [
            ("PolicyDecisionPoint.decide (served)", lambda doc=doc: pdp.decide(doc)),
            ("PolicyDecisionPoint.decide on OPA", lambda doc=doc: opa.decide(doc)),
            ("RegorusEngine.evaluate", lambda doc=doc: engine.evaluate(DEFAULT_QUERY, dict(doc))),
        ]
        try:
            rows.append(("compiled Program/Rvm (not served)", compiled_vm(doc)))
        except Exception as exc:  # regorus's VM compiler does not cover all of Rego yet
            reason = next((line for line in str(exc).splitlines() if line.startswith("error:")), type(exc).__name__)
            print(f"{label:<12} compiled Program/Rvm cannot compile the bundle: {reason}")
        results = [(name, *measure(run, n)) for name, run in rows]
        for name, rate, p50, p99 in results:
            print(f"{label:<12} {name:<34} {rate:>12,.0f} {p50:>8.1f} {p99:>8.1f}")
        if len(results) == 4:
            print(f"{label:<12} Rvm p50 speed-up over the evaluate path: {results[2][2] / results[3][2]:.2f}x")
        for name, _, _, p99 in results[:2]:
            verdict = "meets" if p99 <= TARGET_P99_US else "misses"
            ratio = p99 / TARGET_P99_US
            print(f"{label:<12} {name}: p99 {p99:.0f} µs {verdict} the {TARGET_P99_US:.0f} µs target ({ratio:.1f}x)")


if __name__ == "__main__":
    main()
