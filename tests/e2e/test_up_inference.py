"""`meshgate up` with inference: a CPU node, the model as MCP tool and A2A agent, metered; Ctrl-C stops all."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import yaml
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from tests.e2e.test_cli import alive, descendants, meshgate, meshgate_up
from tests.e2e.test_up_agents import free_ports, send

pytestmark = pytest.mark.e2e

Mesh = tuple[subprocess.Popen[str], str, str, Path]


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[Mesh]:
    (agent_port,) = free_ports(1)  # the broker finds the model agent by its card URL, so its port is fixed
    config: dict[str, Any] = {
        "gateway": {"port": 0},
        "broker": {"enabled": True, "port": 0},
        "registry": {"url": "sqlite:///registry.db"},
        "inference": {
            "enabled": True,
            "nodes": [{"name": "cpu-1", "model": "smollm2", "port": 0}],
            "models": [{"id": "smollm2", "agent_port": agent_port}],
        },
    }
    path = tmp_path / "meshgate.yaml"
    path.write_text(yaml.safe_dump(config))
    with meshgate_up(path) as process:
        assert process.stdout is not None
        gateway = process.stdout.readline().split()[-1]
        broker = process.stdout.readline().split()[-1].removesuffix("/a2a")
        yield process, gateway, broker, path


def wait_until_serving(gateway: str, broker: str) -> dict[str, Any]:
    """Poll both /healthz until the node is registered and the model agent too (bounded)."""
    deadline = time.monotonic() + 90
    while True:
        nodes = httpx.get(gateway.removesuffix("/mcp") + "/healthz").json().get("nodes", [])
        health = httpx.get(f"{broker}/healthz").json()
        if nodes and health["agents"].get("smollm2", {}).get("state") == "registered":
            return health
        assert time.monotonic() < deadline, (nodes, health)
        time.sleep(0.2)


async def call_tool(url: str, key: str, prompt: str) -> dict[str, Any]:
    async with create_mcp_http_client(headers={"Authorization": f"Bearer {key}"}) as http:
        async with Client(streamable_http_client(url, http_client=http), cache=None) as client:
            result = await client.call_tool("smollm2_generate", {"prompt": prompt, "max_tokens": 16})
    assert not result.is_error and result.structured_content is not None, result
    return result.structured_content


def test_up_serves_the_model_as_a_tool_and_an_agent_and_meters_both(mesh: Mesh) -> None:
    process, gateway, broker, config = mesh
    health = wait_until_serving(gateway, broker)
    assert health["nodes"]["cpu-1"]["state"] == "running"
    acme = meshgate("keys", "create", "--tenant", "acme", "--subject", "alice", config=config).stdout.strip()
    travel = meshgate("keys", "create", "--tenant", "travel", "--subject", "planner", config=config).stdout.strip()

    generation = anyio.run(call_tool, gateway, acme, "Say hello.")
    assert generation["node"] == "cpu-1" and generation["text"].strip()
    answer = json.dumps(anyio.run(send, broker, travel, "smollm2", "Say hello."))
    assert "TASK_STATE_COMPLETED" in answer and "io.meshgate/usage" in answer

    deadline = time.monotonic() + 30
    while len(rows := meshgate("usage", "--by", "tenant,via", "--json", config=config).stdout.splitlines()) < 2:
        assert time.monotonic() < deadline, rows
        time.sleep(0.2)
    usage = {(r["tenant"], r["via"]): r for r in map(json.loads, rows)}
    assert set(usage) == {("acme", "mcp"), ("travel", "a2a")}
    assert usage[("acme", "mcp")]["completion_tokens"] == generation["usage"]["completion_tokens"]

    children = descendants(process.pid)
    assert health["nodes"]["cpu-1"]["pid"] in children
    os.killpg(process.pid, signal.SIGINT)
    assert process.wait(timeout=30) == 130
    assert process.stderr is not None
    log = process.stderr.read()
    assert "Traceback" not in log, log
    assert {pid for pid in children if alive(pid)} == set()
    # The node removed itself from the registry on the way out.
    assert meshgate("nodes", "list", "--json", config=config).stdout.strip() == ""
