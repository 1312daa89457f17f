"""`meshgate up` as the whole mesh: the broker launches the example agents, registers them, and Ctrl-C stops all."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import yaml
from a2a.client import A2ACardResolver, A2AClientError, ClientConfig, ClientFactory
from a2a.helpers import new_text_message
from a2a.types import Role, SendMessageRequest
from google.protobuf.json_format import MessageToDict

from tests.e2e.test_cli import alive, descendants, meshgate, meshgate_up

ROOT = Path(__file__).parents[2]
AGENTS = ROOT / "examples" / "agents"

pytestmark = pytest.mark.e2e


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def write_config(tmp_path: Path) -> Path:
    ledger_port, planner_port = free_ports(2)  # an agent's card URL names its port, so it is fixed up front
    agent = ["python"]  # the interpreter running meshgate
    config: dict[str, Any] = {
        "gateway": {"port": 0},
        "broker": {"enabled": True, "port": 0},
        "registry": {"url": "sqlite:///registry.db"},
        "agents": [
            {
                "id": "ledger",
                "card_url": f"http://127.0.0.1:{ledger_port}",
                "launch": [*agent, str(AGENTS / "finance_agent.py"), "--port", str(ledger_port), "--no-grpc"],
            },
            {
                "id": "planner",
                "card_url": f"http://127.0.0.1:{planner_port}",
                "launch": [*agent, str(AGENTS / "travel_agent.py"), "--port", str(planner_port), "--no-grpc"],
                "broker_key": {"tenant": "travel", "subject": "planner"},
            },
        ],
    }
    path = tmp_path / "meshgate.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str, Path]]:
    config = write_config(tmp_path)
    with meshgate_up(config) as process:
        assert process.stdout is not None
        assert process.stdout.readline().startswith("meshgate gateway listening on ")
        line = process.stdout.readline()
        assert line.startswith("meshgate broker listening on "), process.stderr and process.stderr.read()
        yield process, line.split()[-1].removesuffix("/a2a"), config


def wait_registered(broker: str, agents: set[str]) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while True:
        health = httpx.get(f"{broker}/healthz").json()
        if {a for a, s in health["agents"].items() if s["state"] == "registered"} == agents:
            return health
        assert time.monotonic() < deadline, health
        time.sleep(0.2)


async def send(broker: str, key: str, agent_id: str, text: str, skill: str = "") -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=30, headers={"Authorization": f"Bearer {key}"}) as http:
        card = await A2ACardResolver(http, broker).get_agent_card()
        client = ClientFactory(ClientConfig(streaming=False, httpx_client=http)).create(card)
        message = new_text_message(text, role=Role.ROLE_USER)
        if skill:
            message.metadata.update({"io.meshgate/skill": skill})
        try:
            answers = [r async for r in client.send_message(SendMessageRequest(tenant=agent_id, message=message))]
        finally:
            await client.close()
    return MessageToDict(answers[0])


def test_up_launches_and_registers_the_agents_and_relays_allowed_and_denied_delegations(
    mesh: tuple[subprocess.Popen[str], str, Path],
) -> None:
    process, broker, config = mesh
    health = wait_registered(broker, {"ledger", "planner"})
    listed = json.loads(meshgate("agents", "list", "--json", config=config).stdout)
    assert [(a["agent_id"], a["organization"]) for a in listed] == [("ledger", "finance"), ("planner", "travel")]
    key = meshgate("keys", "create", "--tenant", "travel", "--subject", "alice", config=config).stdout.strip()

    quote = anyio.run(send, broker, key, "ledger", "100 EUR to USD", "currency-quote")
    assert "USD" in json.dumps(quote)
    with pytest.raises(A2AClientError) as denied:
        anyio.run(send, broker, key, "ledger", "100 EUR to bob", "transfer-funds")
    assert "-32030" in str(denied.value)
    # The planner delegates a currency-quote to the ledger through the broker, with the key minted for it.
    budget = json.dumps(anyio.run(send, broker, key, "planner", "3 nights at 120 EUR in USD"))
    assert "USD" in budget and "quote_error" not in budget

    children = descendants(process.pid)
    assert {health["agents"][a]["pid"] for a in ("ledger", "planner")} <= children
    os.killpg(process.pid, signal.SIGINT)
    assert process.wait(timeout=30) == 130
    assert process.stderr is not None
    log = process.stderr.read()
    assert "Traceback" not in log, log
    assert {pid for pid in children if alive(pid)} == set()

    records = [json.loads(line) for line in meshgate("audit", "--json", config=config).stdout.splitlines()]
    decided = {(r["subject"], r["resource"], r["allow"]) for r in records if r["action"] == "a2a.message/send"}
    assert {("alice", "ledger", True), ("alice", "ledger", False), ("planner", "ledger", True)} <= decided
    keys = meshgate("keys", "list", "--tenant", "travel", config=config).stdout
    assert [line.split()[-1] for line in keys.splitlines() if " planner " in line] == ["revoked"]


def test_a_killed_agent_is_restarted_re_registered_and_given_a_fresh_key(
    mesh: tuple[subprocess.Popen[str], str, Path],
) -> None:
    process, broker, config = mesh
    before = wait_registered(broker, {"ledger", "planner"})["agents"]
    for agent in ("ledger", "planner"):
        os.kill(before[agent]["pid"], signal.SIGKILL)
    deadline = time.monotonic() + 60
    while True:  # restarted (first backoff 0.5 s) and registered again once its card answers
        after = httpx.get(f"{broker}/healthz").json()["agents"]
        if all(after[a]["state"] == "registered" and after[a]["restarts"] == 1 for a in ("ledger", "planner")):
            break
        assert time.monotonic() < deadline, after
        time.sleep(0.2)
    for agent in ("ledger", "planner"):
        assert after[agent]["pid"] != before[agent]["pid"]
        assert after[agent]["exit_code"] == -signal.SIGKILL
    # The restarted planner delegates to the restarted ledger with the key minted for its new run.
    key = meshgate("keys", "create", "--tenant", "travel", "--subject", "alice", config=config).stdout.strip()
    budget = json.dumps(anyio.run(send, broker, key, "planner", "3 nights at 120 EUR in USD"))
    assert "USD" in budget and "quote_error" not in budget
    keys = meshgate("keys", "list", "--tenant", "travel", config=config).stdout
    assert sorted(line.split()[-1] for line in keys.splitlines() if " planner " in line) == ["active", "revoked"]

    children = descendants(process.pid)
    os.killpg(process.pid, signal.SIGINT)
    assert process.wait(timeout=30) == 130
    assert {pid for pid in children if alive(pid)} == set()
    keys = meshgate("keys", "list", "--tenant", "travel", config=config).stdout
    assert [line.split()[-1] for line in keys.splitlines() if " planner " in line] == ["revoked", "revoked"]


def test_an_agent_that_never_serves_its_card_is_reported_down_and_the_broker_keeps_serving(tmp_path: Path) -> None:
    (port,) = free_ports(1)
    config = tmp_path / "meshgate.yaml"
    silent = [sys.executable, "-c", "import time; time.sleep(600)"]
    agents = [{"id": "ghost", "card_url": f"http://127.0.0.1:{port}", "launch": silent, "start_timeout_s": 0.5}]
    config.write_text(
        yaml.safe_dump(
            {"gateway": {"port": 0}, "broker": {"enabled": True, "port": 0}, "registry": {"url": "sqlite:///r.db"}}
            | {"agents": agents}
        )
    )
    with meshgate_up(config) as process:
        assert process.stdout is not None
        process.stdout.readline()
        broker = process.stdout.readline().split()[-1].removesuffix("/a2a")
        deadline = time.monotonic() + 30
        while (ghost := httpx.get(f"{broker}/healthz").json()["agents"]["ghost"])["state"] != "down":
            assert time.monotonic() < deadline, ghost
            time.sleep(0.2)
        assert "cannot fetch the agent card" in ghost["error"]
        assert httpx.get(f"{broker}/.well-known/agent-card.json").status_code == 200
        children = descendants(process.pid)
        os.killpg(process.pid, signal.SIGINT)
        assert process.wait(timeout=30) == 130
        assert {pid for pid in children if alive(pid)} == set()
