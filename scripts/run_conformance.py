#!/usr/bin/env python3
"""Run the official MCP conformance suite's server scenarios against a streamable-HTTP URL.

Installs the pinned `@modelcontextprotocol/conformance` into the git-ignored `.meshgate/node/`
(with a Node 22 runtime from npm when the system node is older: the suite needs `fs.globSync`),
runs it, prints one line per scenario plus the failing checks, and exits non-zero on failure.
Without a URL it starts `examples/upstreams/conformance_server.py` on a free port and tests that.

    python scripts/run_conformance.py [URL] [--scenario NAME ...] [--suite active|all|pending]
"""

from __future__ import annotations

import argparse
import json
import re
import selectors
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Generator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PREFIX = ROOT / ".meshgate" / "node"
SUITE_PACKAGE = "@modelcontextprotocol/conformance"
SUITE_VERSION = "0.1.16"
# The suite imports `globSync` from `fs`, which Node added in 22.
NODE_PACKAGE = "node@22.23.3"
MIN_NODE_MAJOR = 22
SERVER_START_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class ScenarioResult:
    """The checks of one scenario, counted by status, with the messages of those that did not pass."""

    scenario: str
    passed: int
    failed: int
    warnings: int
    problems: tuple[str, ...]


def _node_major(node: str) -> int:
    out = subprocess.run([node, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    match = re.match(r"v(\d+)\.", out)
    return int(match.group(1)) if match else 0


def _installed_version(package_dir: Path) -> str | None:
    manifest = package_dir / "package.json"
    if not manifest.is_file():
        return None
    return str(json.loads(manifest.read_text())["version"])


def ensure_suite() -> tuple[str, Path]:
    """Install the suite (and Node 22 if needed) under `.meshgate/node/`; return (node, cli path).

    Raises:
        SystemExit: If npm is missing or the install does not produce the expected files.
    """
    npm = shutil.which("npm")
    system_node = shutil.which("node")
    use_system_node = system_node is not None and _node_major(system_node) >= MIN_NODE_MAJOR
    suite_dir = PREFIX / "node_modules" / SUITE_PACKAGE
    local_node = PREFIX / "node_modules" / "node" / "bin" / "node"
    wanted: list[str] = []
    if _installed_version(suite_dir) != SUITE_VERSION:
        wanted.append(f"{SUITE_PACKAGE}@{SUITE_VERSION}")
    if not use_system_node and not local_node.is_file():
        wanted.append(NODE_PACKAGE)
    if wanted:
        if npm is None:
            raise SystemExit("npm is not on PATH; it is needed to install the MCP conformance suite")
        PREFIX.mkdir(parents=True, exist_ok=True)
        print(f"installing {' '.join(wanted)} into {PREFIX.relative_to(ROOT)}", file=sys.stderr)
        subprocess.run([npm, "install", "--prefix", str(PREFIX), "--no-audit", "--no-fund", *wanted], check=True)
    node = system_node if use_system_node and system_node is not None else str(local_node)
    cli = suite_dir / "dist" / "index.js"
    if not cli.is_file() or not Path(node).is_file():
        raise SystemExit(f"conformance suite install incomplete: expected {cli} and {node}")
    return node, cli


def summarize(results_dir: Path) -> list[ScenarioResult]:
    """Read the `checks.json` the suite wrote for each scenario under `results_dir`."""
    results: list[ScenarioResult] = []
    for checks_file in sorted(results_dir.glob("*/checks.json")):
        scenario = re.sub(r"^server-|-\d{4}-\d\d-\d\dT.*$", "", checks_file.parent.name)
        checks = json.loads(checks_file.read_text())
        problems = tuple(
            f"{check['status']} {check['id']}: {check.get('errorMessage') or check.get('description', '')}"
            for check in checks
            if check["status"] in ("FAILURE", "WARNING")
        )
        results.append(
            ScenarioResult(
                scenario=scenario,
                passed=sum(check["status"] == "SUCCESS" for check in checks),
                failed=sum(check["status"] == "FAILURE" for check in checks),
                warnings=sum(check["status"] == "WARNING" for check in checks),
                problems=problems,
            )
        )
    return results


def run_suite(node: str, cli: Path, url: str, args: argparse.Namespace) -> int:
    """Run the chosen scenarios against `url`, print a summary, and return the suite's exit status."""
    options: list[str] = []
    if args.suite:
        options += ["--suite", args.suite]
    if args.spec_version:
        options += ["--spec-version", args.spec_version]
    if args.expected_failures:
        options += ["--expected-failures", str(Path(args.expected_failures).resolve())]
    scenarios: list[str | None] = list(args.scenario) or [None]
    status = 0
    with tempfile.TemporaryDirectory(prefix="mcp-conformance-") as results_dir:
        for scenario in scenarios:
            command = [node, str(cli), "server", "--url", url, "--output-dir", results_dir, *options]
            if scenario is not None:
                command += ["--scenario", scenario]
            run = subprocess.run(command, capture_output=True, text=True, check=False, cwd=results_dir)
            if args.verbose or run.returncode not in (0, 1):
                print(run.stdout + run.stderr, file=sys.stderr)
            status = status or run.returncode
        results = summarize(Path(results_dir))
    for result in results:
        mark = "FAIL" if result.failed else "WARN" if result.warnings else "PASS"
        print(f"{mark} {result.scenario}: {result.passed} passed, {result.failed} failed, {result.warnings} warnings")
        for problem in result.problems:
            print(f"    {problem}")
    print(f"{sum(r.passed for r in results)} passed, {sum(r.failed for r in results)} failed")
    if not results:
        print("the conformance suite produced no results", file=sys.stderr)
        return status or 1
    return status


@contextmanager
def example_server() -> Generator[str, None, None]:
    """Start `examples/upstreams/conformance_server.py` on a free port and yield its URL."""
    script = ROOT / "examples" / "upstreams" / "conformance_server.py"
    proc = subprocess.Popen([sys.executable, str(script), "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            if not selector.select(SERVER_START_TIMEOUT_S):
                raise SystemExit("the example conformance server did not start in time")
        line = proc.stdout.readline()
        if " listening on " not in line:
            raise SystemExit(f"the example conformance server did not start: {line!r}")
        yield line.rsplit(" ", 1)[-1].strip()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, install the suite, run it, and return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url", nargs="?", help="server URL; omitted, the example conformance server is started")
    parser.add_argument("--scenario", action="append", default=[], help="run only this scenario (repeatable)")
    parser.add_argument("--suite", choices=("active", "all", "pending"), help="the suite's own default is active")
    parser.add_argument("--spec-version", help="only scenarios for this spec version, e.g. 2025-11-25")
    parser.add_argument("--expected-failures", help="YAML baseline of scenarios allowed to fail")
    parser.add_argument("--verbose", action="store_true", help="print the suite's own output")
    args = parser.parse_args(argv)
    node, cli = ensure_suite()
    if args.url:
        return run_suite(node, cli, args.url, args)
    with example_server() as url:
        return run_suite(node, cli, url, args)


if __name__ == "__main__":
    sys.exit(main())
