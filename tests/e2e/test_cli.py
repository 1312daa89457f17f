"""The `meshgate` command as a user runs it: a real process, real children, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml
from mcp import Client

ROOT = Path(__file__).parents[2]
UPSTREAMS = ROOT / "examples" / "upstreams"

pytestmark = pytest.mark.e2e


def meshgate(*args: str, config: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "meshgate", "-c", str(config), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=config.parent,
    )


def write_config(tmp_path: Path, toolbox_port: int) -> Path:
    config = {
        "gateway": {"port": 0},
        "registry": {"url": "sqlite:///registry.db"},
        "identity": {"allow_anonymous": True},
        "upstreams": [
            {
                "name": "notes",
                "transport": "stdio",
                "command": ["python", str(UPSTREAMS / "notes_server.py"), "--db", str(tmp_path / "notes.db")],
            },
            {
                "name": "toolbox",
                "transport": "http",
                "url": f"http://127.0.0.1:{toolbox_port}/mcp",
                "launch": ["python", str(UPSTREAMS / "toolbox_server.py"), "--port", str(toolbox_port)],
            },
        ],
    }
    path = tmp_path / "meshgate.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found: set[int] = set()
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.add(child)
            stack.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@contextmanager
def meshgate_up(config: Path) -> Generator[subprocess.Popen[str]]:
    """`meshgate -c CONFIG up` in the config's directory and its own session; its group is killed if it is
    still running when the block ends (a test that stops it with SIGINT checks the exit itself)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "meshgate", "-c", str(config), "up"],
        cwd=config.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture
def gateway_process(tmp_path: Path, free_port: int) -> Iterator[tuple[subprocess.Popen[str], str, Path]]:
    config = write_config(tmp_path, free_port)
    with meshgate_up(config) as process:
        assert process.stdout is not None
        line = process.stdout.readline()  # the gateway prints its URL once it listens
        assert line.startswith("meshgate gateway listening on "), process.stderr and process.stderr.read()
        yield process, line.split()[-1], config


def test_up_serves_the_example_catalog_and_ctrl_c_stops_every_child(
    gateway_process: tuple[subprocess.Popen[str], str, Path],
) -> None:
    process, url, config = gateway_process

    async def use() -> list[str]:
        async with Client(url) as client:
            with anyio.fail_after(30):
                while True:  # the launched HTTP upstream may still be starting when the gateway listens
                    names = [t.name for t in (await client.list_tools()).tools]
                    if "toolbox_calculate" in names:
                        break
                    await anyio.sleep(0.2)
            result = await client.call_tool("toolbox_calculate", {"expression": "21*2"})
            assert "42" in json.dumps(result.model_dump(mode="json"))
            return names

    assert anyio.run(use) == ["toolbox_calculate", "toolbox_convert_units"]  # anonymous: the public tenant
    children = descendants(process.pid)
    assert len(children) >= 2  # the stdio child and the launched HTTP server
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C sends to the foreground process group
    assert process.wait(timeout=30) == 130  # the shell convention for an interrupted command: 128 + SIGINT
    assert process.stderr is not None and "Traceback" not in process.stderr.read()
    leftover = {pid for pid in children if alive(pid)}
    assert leftover == set()

    audit = meshgate("audit", "--json", config=config)
    records = [json.loads(line) for line in audit.stdout.splitlines()]
    assert any(r["resource"] == "toolbox_calculate" and r["allow"] for r in records)


def test_servers_add_records_tools_and_list_and_remove_manage_them(tmp_path: Path) -> None:
    config = tmp_path / "meshgate.yaml"
    config.write_text("registry: {url: 'sqlite:///registry.db'}\n")
    added = meshgate(
        "servers",
        "add",
        "notes",
        "--",
        sys.executable,
        str(UPSTREAMS / "notes_server.py"),
        "--db",
        str(tmp_path / "n.db"),
        config=config,
    )
    assert added.returncode == 0, added.stderr
    assert "registered notes (stdio) with 4 tools" in added.stdout
    listed = json.loads(meshgate("servers", "list", "--json", config=config).stdout)
    assert [(s["name"], len(s["tools"])) for s in listed] == [("notes", 4)]
    assert all(len(t["hash"]) == 64 for t in listed[0]["tools"])
    assert meshgate("servers", "remove", "notes", config=config).returncode == 0
    assert json.loads(meshgate("servers", "list", "--json", config=config).stdout) == []


def test_adding_an_unreachable_server_stores_nothing(tmp_path: Path) -> None:
    config = tmp_path / "meshgate.yaml"
    config.write_text("registry: {url: 'sqlite:///registry.db'}\n")
    failed = meshgate("servers", "add", "ghost", "--url", "http://127.0.0.1:9/mcp", config=config)
    assert failed.returncode == 2 and "upstream_unavailable" in failed.stderr
    assert json.loads(meshgate("servers", "list", "--json", config=config).stdout) == []


def test_a_config_error_names_the_bad_key_and_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "meshgate.yaml"
    config.write_text("gateway:\n  port: high\n")
    result = meshgate("up", config=config)
    assert result.returncode == 2
    assert "config_invalid" in result.stderr and "gateway.port" in result.stderr


def test_up_help_documents_the_command(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "meshgate", "up", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    assert "--port" in result.stdout and "Ctrl-C" in result.stdout


# meshgate agents


def _ledger_card_and_jwks(tmp_path: Path, *, tamper: bool = False) -> tuple[Path, Path]:
    from a2a.types import AgentCapabilities, AgentCard, AgentInterface, AgentProvider, AgentSkill
    from a2a.utils.signing import create_agent_card_signer
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
    from google.protobuf.json_format import MessageToJson
    from jwt.algorithms import ECAlgorithm

    private = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(ECAlgorithm.to_jwk(private.public_key())) | {"kid": "finance-1", "alg": "ES256"}
    card = AgentCard(
        name="ledger",
        description="finance's ledger",
        version="1.0.0",
        provider=AgentProvider(organization="finance", url="https://finance.example"),
        supported_interfaces=[
            AgentInterface(protocol_binding="JSONRPC", protocol_version="1.0", url="http://127.0.0.1:1/a2a/jsonrpc")
        ],
        capabilities=AgentCapabilities(streaming=True),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=[AgentSkill(id="currency-quote", name="Quote", description="q", tags=["finance"])],
    )
    header: Any = {"alg": "ES256", "kid": "finance-1", "typ": "JOSE"}
    key = private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    text = MessageToJson(create_agent_card_signer(key, header)(card), indent=4)
    if tamper:
        text = text.replace("finance's ledger", "finance's ledger (new payee)")
    card_path, jwks_path = tmp_path / "ledger.card.json", tmp_path / "finance.jwks.json"
    card_path.write_text(text)
    jwks_path.write_text(json.dumps({"keys": [jwk]}))
    return card_path, jwks_path


def test_agents_add_by_url_list_and_remove(tmp_path: Path) -> None:
    config = tmp_path / "meshgate.yaml"
    config.write_text("registry: {url: 'sqlite:///registry.db'}\n")
    command = [sys.executable, str(ROOT / "examples" / "agents" / "finance_agent.py"), "--port", "0", "--no-grpc"]
    agent = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert agent.stdout is not None
        base_url = agent.stdout.readline().rsplit(" ", 1)[-1].strip()
        added = meshgate("agents", "add", "ledger", "--url", base_url, config=config)
        assert added.returncode == 0, added.stderr
        assert "registered ledger (finance, unsigned): ledger with 2 skills" in added.stdout
        again = meshgate("agents", "add", "ledger", "--url", base_url, config=config)
        assert again.returncode == 2 and "already_exists" in again.stderr
        assert meshgate("agents", "add", "ledger", "--url", base_url, "--replace", config=config).returncode == 0
    finally:
        agent.terminate()
        agent.wait(timeout=10)
    (listed,) = json.loads(meshgate("agents", "list", "--json", config=config).stdout)
    assert listed["agent_id"] == "ledger" and listed["organization"] == "finance"
    assert listed["skills"] == ["currency-quote", "transfer-funds"]
    assert listed["url"] == base_url + "/.well-known/agent-card.json" and listed["signed"] is False
    table = meshgate("agents", "list", config=config).stdout.splitlines()
    assert table[0].split() == ["ID", "ORG", "NAME", "SKILLS", "SIGNED", "URL"]
    assert table[1].split()[:5] == ["ledger", "finance", "ledger", "currency-quote,transfer-funds", "no"]
    assert meshgate("agents", "remove", "ledger", config=config).returncode == 0
    assert meshgate("agents", "list", config=config).stdout.strip() == "no agents registered"
    gone = meshgate("agents", "remove", "ledger", config=config)
    assert gone.returncode == 2 and "not_found" in gone.stderr


def test_agents_add_stores_a_verified_signed_card_byte_for_byte(tmp_path: Path) -> None:
    from registry.sqlite_store import SqliteStore

    config = tmp_path / "meshgate.yaml"
    config.write_text("registry: {url: 'sqlite:///registry.db'}\n")
    card, jwks = _ledger_card_and_jwks(tmp_path)
    added = meshgate("agents", "add", "ledger", "--card", str(card), "--jwks", str(jwks), config=config)
    assert added.returncode == 0, added.stderr
    assert "(finance, signed, verified)" in added.stdout
    store = SqliteStore(tmp_path / "registry.db")
    try:
        record = store.get_agent("ledger")
    finally:
        store.close()
    assert record.card_json == card.read_text() and record.signed and record.card_url == ""


def test_agents_add_rejects_a_tampered_or_unverifiable_signed_card(tmp_path: Path) -> None:
    config = tmp_path / "meshgate.yaml"
    config.write_text("registry: {url: 'sqlite:///registry.db'}\n")
    card, jwks = _ledger_card_and_jwks(tmp_path, tamper=True)
    failed = meshgate("agents", "add", "ledger", "--card", str(card), "--jwks", str(jwks), config=config)
    assert failed.returncode == 2 and "card_signature_invalid" in failed.stderr
    no_keys = meshgate("agents", "add", "ledger", "--card", str(card), config=config)
    assert no_keys.returncode == 2 and "card_signature_invalid" in no_keys.stderr
    unreachable = meshgate("agents", "add", "ghost", "--url", "http://127.0.0.1:9", config=config)
    assert unreachable.returncode == 2 and "card_invalid" in unreachable.stderr
    assert meshgate("agents", "list", config=config).stdout.strip() == "no agents registered"
