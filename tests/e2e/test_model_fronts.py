"""A model behind the gateway and the broker: a real CPU node, the model's MCP tool and A2A agent, policy, metering.

A `meshgate node` process serves SmolLM2 on llama.cpp and registers in the test's SQLite registry; the
gateway federates the model's front (`inference_node/mcp_server.py`, a stdio child) as tool
`smollm2_generate`, and the broker relays to its agent (`inference_node/a2a_agent.py`, a child process).
Both decide each call with the shipped bundle (which grants tenants a token budget) and meter the
tokens against the caller.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from a2a.client import A2ACardResolver, A2AClientError, ClientConfig, ClientFactory
from a2a.client import Client as A2AClient
from a2a.helpers import new_text_message
from a2a.types import Role, SendMessageRequest
from google.protobuf.json_format import MessageToDict
from mcp import MCPError
from mcp_types import CallToolResult

from a2a_broker.app import build_broker
from a2a_broker.wire_errors import PolicyDeniedError
from inference_node.launcher import with_model_fronts
from meshgate.config import BrokerConfig
from meshgate.identity import Authenticator, new_api_key
from policies import DEFAULT_BUNDLE, RegorusEngine
from registry.audit import AuditLog
from registry.models import AgentRecord, AuditQuery, UsageQuery
from registry.sqlite_store import SqliteStore
from registry.usage import UsageMeter
from tests.e2e.announced import announced
from tests.e2e.gateway_harness import config_for, running_gateway
from tests.e2e.test_broker import serving

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


@asynccontextmanager
async def running_node(registry: Path, name: str = "cpu-1") -> AsyncGenerator[str, None]:
    """A real `meshgate node` on 127.0.0.1:0; yields its announcement line once it serves and is registered."""
    argv = [sys.executable, "-m", "meshgate", "node", "--name", name, "--model", "smollm2", "--port", "0"]
    env = {"MESHGATE_REGISTRY_URL": f"sqlite:///{registry}", "PATH": "/usr/bin:/bin"}
    async with announced(argv, env=env) as (_, line):
        yield line


def model_config(tmp_path: Path) -> Any:
    registry = tmp_path / "registry.db"
    config = config_for(
        tmp_path,
        [],
        registry={"url": f"sqlite:///{registry}"},
        inference={"enabled": True, "models": [{"id": "smollm2"}]},
    )
    return with_model_fronts(config)


def structured(result: CallToolResult) -> dict[str, Any]:
    assert result.structured_content is not None, result
    return result.structured_content


async def test_model_tool_generates_real_tokens_under_the_callers_budget_and_is_metered(tmp_path: Path) -> None:
    config = model_config(tmp_path)
    async with running_node(tmp_path / "registry.db"), running_gateway(config, tmp_path / "registry.db") as gw:
        reported: list[tuple[float, str | None]] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            reported.append((progress, message))

        async with gw.client() as client:  # anonymous: tenant `public`, budget 64 tokens
            names = [t.name for t in (await client.list_tools()).tools]
            assert "smollm2_generate" in names
            result = await client.call_tool(
                "smollm2_generate",
                {"prompt": "List the planets of the solar system, one per line.", "max_tokens": 500},
                progress_callback=on_progress,
            )
        assert not result.is_error, result
        generation = structured(result)
        assert generation["model"] == "smollm2" and generation["node"] == "cpu-1"
        assert generation["text"].strip()  # real text from the model
        usage = generation["usage"]
        assert usage["prompt_tokens"] > 0 and 0 < usage["completion_tokens"] <= 64
        # Streamed tokens arrived as progress notifications, their messages adding up to the text.
        assert reported and "".join(m or "" for _, m in reported) == generation["text"]
        # The policy lowered the budget before the call was forwarded; the audit keeps what was forwarded.
        [record] = gw.gateway.audit.query(AuditQuery(action="mcp.tools/call"))  # flushes the audit writer first
        assert record.allow and record.arguments is not None and record.arguments["max_tokens"] == 64
        # The tokens are metered against the caller, joined to the decision.
        [row] = gw.gateway.meter.query(UsageQuery())  # flushes the meter's writer first
        assert (row.tenant, row.model, row.node, row.via) == ("public", "smollm2", "cpu-1", "mcp")
        assert (row.prompt_tokens, row.completion_tokens) == (usage["prompt_tokens"], usage["completion_tokens"])
        assert row.decision_id == record.decision_id


async def test_model_tool_without_a_node_answers_model_not_found_and_the_gateway_keeps_serving(
    tmp_path: Path,
) -> None:
    config = model_config(tmp_path)
    async with running_gateway(config, tmp_path / "registry.db") as gw, gw.client() as client:
        result = await client.call_tool("smollm2_generate", {"prompt": "hello"})
        assert result.is_error
        assert result.content[0].type == "text" and result.content[0].text.startswith("model_not_found")
        assert (await client.list_tools()).tools  # still serving


async def test_model_tool_is_denied_to_a_tenant_without_a_grant(tmp_path: Path) -> None:
    config = model_config(tmp_path)
    async with running_gateway(config, tmp_path / "registry.db") as gw:
        token = gw.api_key("finance", "auditor-bot")
        async with gw.client(token) as client:
            with pytest.raises(MCPError) as denied:
                await client.call_tool("smollm2_generate", {"prompt": "hello"})
    assert denied.value.error.code == -32030


@asynccontextmanager
async def running_model_agent(registry: Path) -> AsyncGenerator[str, None]:
    """The model's A2A agent (`inference_node/a2a_agent.py`) on 127.0.0.1:0; yields its base URL."""
    argv = [
        sys.executable,
        "-m",
        "inference_node.a2a_agent",
        "--model",
        "smollm2",
        "--registry",
        f"sqlite:///{registry}",
    ]
    async with announced(argv, timeout_s=30) as (_, line):
        yield line.rsplit(" ", 1)[-1]


@asynccontextmanager
async def model_mesh(tmp_path: Path) -> AsyncGenerator[tuple[str, SqliteStore, AuditLog, UsageMeter], None]:
    """A node, the model's agent registered with an in-process broker that meters it; yields the broker URL."""
    registry = tmp_path / "registry.db"
    store = SqliteStore(registry)
    audit = AuditLog(store)
    meter = UsageMeter(store)
    broker = build_broker(
        BrokerConfig(enabled=True, port=0, relay_timeout_s=30),
        store,
        RegorusEngine(DEFAULT_BUNDLE),
        Authenticator([], store, False),
        audit,
        allow_anonymous=False,
        meter=meter,
        metered_agents=frozenset({"smollm2"}),
    )
    try:
        async with running_node(registry), running_model_agent(registry) as agent_url:
            async with httpx.AsyncClient() as http:
                card = (await http.get(f"{agent_url}/.well-known/agent-card.json")).text
            store.add_agent(AgentRecord("smollm2", "meshgate", card, agent_url, False, "2026-01-01T00:00:00Z"))
            async with serving(broker.asgi()) as front:
                broker.base_url = f"http://127.0.0.1:{front.port}"
                yield broker.base_url, store, audit, meter
    finally:
        meter.close()
        audit.close()
        store.close()


def api_key(store: SqliteStore, tenant: str) -> str:
    record, token = new_api_key(tenant, f"{tenant}-bot", ())
    store.add_api_key(record)
    return token


@asynccontextmanager
async def a2a_client(url: str, token: str) -> AsyncGenerator[A2AClient, None]:
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        card = await A2ACardResolver(http, url).get_agent_card()
        yield ClientFactory(ClientConfig(streaming=True, httpx_client=http)).create(card)


def generate_request(text: str, max_tokens: int) -> SendMessageRequest:
    message = new_text_message(text, role=Role.ROLE_USER)
    message.metadata.update({"max_tokens": max_tokens})
    return SendMessageRequest(tenant="smollm2", message=message)


async def test_model_agent_streams_through_the_broker_under_the_organisations_budget_and_is_metered(
    tmp_path: Path,
) -> None:
    async with model_mesh(tmp_path) as (url, store, audit, meter):
        token = api_key(store, "travel")  # the shipped bundle: travel may use smollm2, 256 tokens per generation
        chunks: list[str] = []
        final: dict[str, Any] = {}
        async with a2a_client(url, token) as client:
            async for response in client.send_message(generate_request("Name three colours.", 1000)):
                if response.HasField("artifact_update"):
                    chunks.extend(p.text for p in response.artifact_update.artifact.parts)
                if response.HasField("status_update") and response.status_update.status.HasField("message"):
                    final = MessageToDict(response.status_update.status.message)
        assert final, "the task ended without a final message"
        usage = final["metadata"]["io.meshgate/usage"]
        assert usage["max_tokens"] == 256  # the caller asked 1000; the policy's obligation lowered it
        assert "".join(chunks) == final["parts"][0]["text"] and chunks  # streamed chunk by chunk
        assert 0 < usage["completion_tokens"] <= 256 and usage["node"] == "cpu-1"
        assert audit.flush()
        [record] = audit.query(AuditQuery(action="a2a.message/stream"))
        assert (record.allow, record.outcome, record.tenant, record.resource) == (True, "ok", "travel", "smollm2")
        [row] = meter.query(UsageQuery(tenant="travel"))  # flushes the meter's writer first
        assert (row.via, row.model, row.node, row.decision_id) == ("a2a", "smollm2", "cpu-1", record.decision_id)
        assert row.completion_tokens == usage["completion_tokens"]


async def test_model_agent_is_denied_to_an_organisation_without_a_grant(tmp_path: Path) -> None:
    async with model_mesh(tmp_path) as (url, store, _, meter):
        token = api_key(store, "finance")
        async with a2a_client(url, token) as client:
            with pytest.raises(A2AClientError) as denied:
                async for _ in client.send_message(generate_request("hello", 8)):
                    pass
        assert meter.query(UsageQuery()) == []
    assert str(PolicyDeniedError.jsonrpc_code) in str(denied.value)
