"""The governed gateway end to end: real `mcp` clients over HTTP, real stdio and HTTP upstreams,
the real Rego engine with the shipped bundle, the SQLite registry and audit log."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import anyio
import httpx2
import pytest
from mcp.shared.exceptions import MCPError

from mcp_gateway.policy import DECISION_META_KEY
from registry.models import AuditQuery, AuditRecord
from tests.e2e.gateway_harness import (
    RunningGateway,
    config_for,
    echo_upstream,
    health,
    http_upstream,
    notes_upstream,
    running_gateway,
)

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


@pytest.fixture
async def mesh(tmp_path: Path) -> AsyncIterator[RunningGateway]:
    async with http_upstream("toolbox_server.py") as toolbox_url:
        upstreams = [
            notes_upstream(tmp_path),
            {"name": "toolbox", "transport": "http", "url": toolbox_url},
            echo_upstream(),
        ]
        async with running_gateway(config_for(tmp_path, upstreams), tmp_path / "registry.db") as gw:
            yield gw


def audit_of(gw: RunningGateway, decision_id: str) -> AuditRecord:
    gw.gateway.audit.flush()
    (record,) = gw.store.query_audit(AuditQuery(decision_id=decision_id))
    return record


def error_data(exc: MCPError) -> dict[str, Any]:
    data: Any = exc.data
    assert isinstance(data, dict)
    return cast(dict[str, Any], data)


async def test_admin_sees_one_namespaced_catalog_from_stdio_and_http_upstreams(mesh: RunningGateway) -> None:
    async with mesh.client(mesh.api_key("acme", "root", ["admin"])) as client:
        tools = [t.name for t in (await client.list_tools()).tools]
        resources = [r.uri for r in (await client.list_resources()).resources]
        prompts = [p.name for p in (await client.list_prompts()).prompts]
    assert {"notes_add_note", "notes_search_notes", "toolbox_calculate", "echo_echo"} <= set(tools)
    assert tools == sorted(tools)
    assert {"notes+notes://index", "toolbox+toolbox://units"} <= set(resources)
    assert {"notes_summarize_notes", "toolbox_explain_calculation"} <= set(prompts)


async def test_tools_list_is_filtered_to_what_the_tenant_may_see(mesh: RunningGateway) -> None:
    async with mesh.client() as anonymous:
        public = sorted(t.name for t in (await anonymous.list_tools()).tools)
        public_resources = [r.uri for r in (await anonymous.list_resources()).resources]
    async with mesh.client(mesh.api_key("globex", "bob")) as globex:
        globex_tools = {t.name for t in (await globex.list_tools()).tools}
    assert public == ["toolbox_calculate", "toolbox_convert_units"]
    assert public_resources == ["toolbox+toolbox://units"]
    assert globex_tools == {"toolbox_calculate", "toolbox_convert_units", "toolbox_hash_text", "toolbox_now"}


async def test_allowed_call_reaches_the_upstream_and_is_audited_with_its_outcome(mesh: RunningGateway) -> None:
    async with mesh.client(mesh.api_key("acme", "alice")) as client:
        added = await client.call_tool("notes_add_note", {"title": "standup", "body": "ship the gateway"})
        found = await client.call_tool("notes_search_notes", {"query": "gateway", "limit": 5})
    assert not added.is_error and not found.is_error
    assert "standup" in json.dumps(found.structured_content)
    assert found.meta is not None and found.meta["io.modelcontextprotocol/serverInfo"]["name"] == "meshgate"
    record = audit_of(mesh, found.meta[DECISION_META_KEY])
    assert (record.subject, record.tenant, record.action, record.resource) == (
        "alice",
        "acme",
        "mcp.tools/call",
        "notes_search_notes",
    )
    assert record.allow and record.outcome == "ok" and record.reasons
    assert record.arguments == {"query": "gateway", "limit": 5}
    assert added.meta is not None
    assert audit_of(mesh, added.meta[DECISION_META_KEY]).arguments is None  # the policy keeps note bodies out


async def test_denied_call_is_an_mcp_error_naming_the_reasons(mesh: RunningGateway) -> None:
    async with mesh.client(mesh.api_key("globex", "bob")) as client:
        with pytest.raises(MCPError) as info:
            await client.call_tool("notes_search_notes", {"query": "x"})
        still_served = await client.call_tool("toolbox_calculate", {"expression": "6*7"})
    data = error_data(info.value)
    assert info.value.code == -32030 and data["code"] == "policy_denied"
    assert any("globex" in reason for reason in data["reasons"])
    record = audit_of(mesh, data["decision_id"])
    assert not record.allow and record.outcome == "denied" and list(record.reasons) == data["reasons"]
    assert not still_served.is_error


async def test_an_argument_over_the_policy_limit_is_denied(mesh: RunningGateway) -> None:
    async with mesh.client(mesh.api_key("acme", "alice")) as client:
        with pytest.raises(MCPError) as info:
            await client.call_tool("notes_search_notes", {"query": "x", "limit": 80})
    assert error_data(info.value)["code"] == "policy_denied"
    assert any("limit" in reason and "50" in reason for reason in error_data(info.value)["reasons"])


async def test_arguments_violating_the_input_schema_are_rejected_before_forwarding(mesh: RunningGateway) -> None:
    async with mesh.client(mesh.api_key("acme", "alice")) as client:
        with pytest.raises(MCPError) as info:
            await client.call_tool("notes_search_notes", {"query": "x", "limit": "ten"})
    assert info.value.code == -32602
    assert error_data(info.value)["code"] == "invalid_arguments"
    assert error_data(info.value)["path"] == "arguments.limit"


async def test_an_unknown_tool_is_invalid_params(mesh: RunningGateway) -> None:
    async with mesh.client(mesh.api_key("acme", "alice")) as client:
        with pytest.raises(MCPError) as info:
            await client.call_tool("notes_no_such_tool", {})
    assert info.value.code == -32602 and error_data(info.value)["code"] == "tool_not_found"


async def test_resources_and_prompts_are_read_through_the_namespace(mesh: RunningGateway) -> None:
    async with mesh.client(mesh.api_key("acme", "alice")) as client:
        units = await client.read_resource("toolbox+toolbox://units")
        prompt = await client.get_prompt("toolbox_explain_calculation", {"expression": "1+1"})
    assert units.contents[0].uri == "toolbox+toolbox://units"
    assert prompt.messages and "1+1" in json.dumps(prompt.model_dump(mode="json"))


async def test_an_upstream_killed_mid_call_fails_that_call_only_and_comes_back(mesh: RunningGateway) -> None:
    async with mesh.client(mesh.api_key("acme", "root", ["admin"])) as client:
        with pytest.raises(MCPError) as info:
            await client.call_tool("echo_crash", {})
        assert error_data(info.value)["code"] == "upstream_unavailable"
        assert not (await client.call_tool("toolbox_calculate", {"expression": "1+2"})).is_error
        with anyio.fail_after(30):  # the supervisor restarts the stdio child with backoff
            while True:
                states = {u["name"]: u["state"] for u in (await health(mesh.base))["upstreams"]}
                if states["echo"] == "ready":
                    break
                await anyio.sleep(0.1)
        echoed = await client.call_tool("echo_echo", {"text": "back"})
    assert "back" in json.dumps(echoed.model_dump(mode="json"))
    gw = mesh.gateway
    gw.audit.flush()
    crash = [r for r in gw.store.query_audit(AuditQuery(limit=50)) if r.resource == "echo_crash"]
    assert [r.outcome for r in crash] == ["upstream_unavailable"]


async def test_legacy_handshake_clients_are_served_too(mesh: RunningGateway) -> None:
    async with mesh.client(mesh.api_key("acme", "alice"), mode="legacy") as client:
        assert client.protocol_version == "2025-11-25"
        result = await client.call_tool("toolbox_calculate", {"expression": "2**10"})
    assert "1024" in json.dumps(result.model_dump(mode="json"))


async def test_modern_clients_negotiate_the_2026_revision(mesh: RunningGateway) -> None:
    async with mesh.client(mesh.api_key("acme", "alice")) as client:
        assert client.protocol_version == "2026-07-28"


async def test_malformed_json_rpc_gets_a_parse_error_and_the_gateway_keeps_serving(mesh: RunningGateway) -> None:
    headers = {
        "content-type": "application/json",
        "accept": "application/json, text/event-stream",
        "mcp-protocol-version": "2026-07-28",
    }
    async with httpx2.AsyncClient() as http:
        response = await http.post(mesh.url, content=b'{"jsonrpc": "2.0", "id": 1, "method": ', headers=headers)
    assert response.json()["error"]["code"] == -32700
    async with mesh.client() as client:
        assert (await client.list_tools()).tools


async def test_health_reports_every_upstream_and_the_policy_revision(mesh: RunningGateway) -> None:
    body = await health(mesh.base)
    assert body["status"] == "ok"
    assert {u["name"]: u["state"] for u in body["upstreams"]} == {"echo": "ready", "notes": "ready", "toolbox": "ready"}
    assert body["policy"]["engine"] == "regorus" and body["policy"]["revision"]


async def test_registry_records_every_upstream_tool_with_a_definition_hash(mesh: RunningGateway) -> None:
    tools = {(t.server, t.name): t.definition_hash for t in mesh.store.list_tools()}
    assert ("notes", "search_notes") in tools and ("toolbox", "calculate") in tools
    assert all(len(h) == 64 for h in tools.values())


async def test_a_down_upstream_is_degraded_and_its_tools_answer_with_a_clear_error(tmp_path: Path) -> None:
    upstreams = [notes_upstream(tmp_path), {"name": "ghost", "transport": "http", "url": "http://127.0.0.1:9/mcp"}]
    config = config_for(tmp_path, upstreams)
    async with running_gateway(config, tmp_path / "registry.db") as gw:
        body = await health(gw.base)
        async with gw.client(gw.api_key("acme", "alice")) as client:
            tools = [t.name for t in (await client.list_tools()).tools]
    assert body["status"] == "degraded"
    ghost = next(u for u in body["upstreams"] if u["name"] == "ghost")
    assert ghost["state"] == "degraded" and ghost["error"]
    assert "notes_add_note" in tools


async def test_an_http_upstream_dying_mid_call_fails_the_call_with_a_clear_error(tmp_path: Path) -> None:
    async with http_upstream("echo_server.py", "--transport", "http") as echo_url:
        upstreams = [{"name": "echo", "transport": "http", "url": echo_url, "timeout_s": 10}]
        async with running_gateway(config_for(tmp_path, upstreams), tmp_path / "r.db") as gw:
            async with gw.client(gw.api_key("acme", "root", ["admin"])) as client:
                with anyio.fail_after(20):
                    with pytest.raises(MCPError) as info:
                        await client.call_tool("echo_crash", {})
                tools = [t.name for t in (await client.list_tools()).tools]
            body = await health(gw.base)
    assert error_data(info.value)["code"] == "upstream_unavailable"
    assert "echo_echo" in tools  # the last listing stays; calls to it answer upstream_unavailable
    assert body["upstreams"][0]["state"] == "degraded"


async def test_a_tool_added_upstream_at_run_time_appears_in_the_catalog(tmp_path: Path) -> None:
    async with running_gateway(config_for(tmp_path, [echo_upstream()]), tmp_path / "r.db") as gw:
        async with gw.client(gw.api_key("acme", "root", ["admin"])) as client:
            await client.call_tool("echo_add_alias", {"name": "shout"})
            with anyio.fail_after(20):  # the upstream announces the change; the gateway re-lists
                while "echo_shout" not in [t.name for t in (await client.list_tools()).tools]:
                    await anyio.sleep(0.05)
            result = await client.call_tool("echo_shout", {"text": "hey"})
        recorded = {t.name for t in gw.store.list_tools("echo")}
    assert "hey" in json.dumps(result.model_dump(mode="json"))
    assert "shout" in recorded


async def test_a_listening_client_is_told_when_the_tool_list_changes(tmp_path: Path) -> None:
    async with running_gateway(config_for(tmp_path, [echo_upstream()]), tmp_path / "r.db") as gw:
        token = gw.api_key("acme", "root", ["admin"])
        async with gw.client(token) as listener, gw.client(token) as caller:
            async with listener.listen(tools_list_changed=True, prompts_list_changed=True) as subscription:
                await caller.call_tool("echo_add_alias", {"name": "holler"})
                with anyio.fail_after(20):
                    event = await anext(aiter(subscription))
            tools = [t.name for t in (await listener.list_tools()).tools]
    assert type(event).__name__ == "ToolsListChanged"
    assert "echo_holler" in tools


async def test_a_registered_upstream_down_at_start_keeps_its_recorded_tools_listed(tmp_path: Path) -> None:
    from registry.hashing import tool_definition_hash
    from registry.models import ToolRecord, UpstreamServer
    from registry.sqlite_store import SqliteStore

    schema = {"type": "object", "properties": {"q": {"type": "string"}}}
    store = SqliteStore(tmp_path / "r.db")
    store.add_server(UpstreamServer(name="ghost", transport="http", url="http://127.0.0.1:9/mcp"))
    store.record_tools(
        "ghost",
        [
            ToolRecord(
                "ghost",
                "lookup",
                "Look things up.",
                schema,
                None,
                tool_definition_hash("lookup", "Look things up.", schema, None),
            )
        ],
    )
    store.close()
    async with running_gateway(config_for(tmp_path, []), tmp_path / "r.db") as gw:
        async with gw.client(gw.api_key("acme", "root", ["admin"])) as client:
            tools = [t.name for t in (await client.list_tools()).tools]
            with pytest.raises(MCPError) as info:
                await client.call_tool("ghost_lookup", {"q": "x"})
    assert tools == ["ghost_lookup"]
    assert error_data(info.value)["code"] == "upstream_unavailable"
