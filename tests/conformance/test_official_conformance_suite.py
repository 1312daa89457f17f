"""The official MCP conformance suite's server scenarios, run against the example conformance server.

Needs npm: `scripts/run_conformance.py` installs the pinned `@modelcontextprotocol/conformance`
into the git-ignored `.meshgate/node/` on first use.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]

pytestmark = pytest.mark.conformance


@pytest.mark.timeout(600)
def test_the_example_conformance_server_passes_every_active_server_scenario() -> None:
    if shutil.which("npm") is None:
        pytest.skip("npm is needed to install @modelcontextprotocol/conformance")
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "run_conformance.py")],
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.rstrip().endswith(" passed, 0 failed")
