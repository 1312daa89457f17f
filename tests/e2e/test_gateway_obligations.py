"""Obligations enforced at the gateway's socket, and the input documents it builds, with real `mcp`
clients, real stdio upstreams and the real Rego engine (the shipped bundle, or a small one whose
obligations come from data, to aim each obligation at one tool)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import mcp_types as types
import pytest
from jsonschema import Draft202012Validator, validators
from mcp.shared.exceptions import MCPError

from mcp_gateway.federation import tool_record
from mcp_gateway.policy import DECISION_META_KEY, RESULT_DECISION_META_KEY
from policies import DEFAULT_BUNDLE, PolicyInput
from policies.decision import Decision
from policies.obligations import REDACTED
from registry.models import AuditQuery, AuditRecord, UpstreamServer
from tests.e2e.gateway_harness import RunningGateway, config_for, echo_upstream, notes_upstream, running_gateway

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

SCHEMA = json.loads((DEFAULT_BUNDLE / "schema" / "input.v1.json").read_text())

# Allows everything; lists see every candidate; other obligations come from
# data.obligations[action][resource id]. A result mentioning "classified" is denied.
POLICY = """package meshgate.mcp

decision := {"allow": allow, "reasons": ["obligations test"], "obligations": obligations}

default allow := true

allow := false if {
\tinput.action == "mcp.tools/result"
\tcontains(json.marshal(input.result), "classified")
}

default obligations := {}

obligations := {"visible": input.resource.items} if input.resource.kind == "catalog"

obligations := data.obligations[input.action][input.resource.id] if input.resource.kind != "catalog"
"""

OBLIGATIONS = {
    "mcp.tools/call": {
        "notes_add_note": {"redact_arguments": ["title"], "audit_arguments": True},
        "notes_search_notes": {"cap_arguments": {"limit": 2}, "audit_arguments": True},
        "echo_slow_echo": {"require_pinned": True},
        "echo_add_alias": {"frobnicate": True},
    },
    "mcp.tools/result": {
        "notes_read_note": {"redact_result": ["body"]},
        "echo_echo": {"max_result_bytes": 200},
    },
}


def text_of(result: types.CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text


def error_data(exc: MCPError) -> dict[str, Any]:
    data: Any = exc.data
    assert isinstance(data, dict)
    return cast(dict[str, Any], data)


def audit_of(gw: RunningGateway, decision_id: str) -> AuditRecord:
    gw.gateway.audit.flush()
    (record,) = gw.store.query_audit(AuditQuery(decision_id=decision_id))
    return record


@pytest.fixture
async def gw(tmp_path: Path) -> AsyncIterator[RunningGateway]:
    bundle = tmp_path / "bundle"
    (bundle / "rego").mkdir(parents=True)
    (bundle / "data").mkdir()
    (bundle / "rego" / "policy.rego").write_text(POLICY)
    (bundle / "data" / "obligations.json").write_text(json.dumps({"obligations": OBLIGATIONS}))
    # echo's `slow_echo` was registered with another definition: a changed tool, no longer pinned.
    from registry.sqlite_store import SqliteStore

    store = SqliteStore(tmp_path / "r.db")
    store.add_server(UpstreamServer(name="echo", transport="stdio", command=("python",)))
    old = types.Tool(name="slow_echo", description="Echo slowly.", input_schema={"type": "object", "properties": {}})
    store.record_tools("echo", [tool_record("echo", old)])
    store.close()
    config = config_for(tmp_path, [notes_upstream(tmp_path), echo_upstream()], policy={"bundle": str(bundle)})
    async with running_gateway(config, tmp_path / "r.db") as running:
        yield running


async def test_redacted_arguments_never_reach_the_upstream_or_the_audit_log(gw: RunningGateway) -> None:
    async with gw.client() as client:
        added = await client.call_tool("notes_add_note", {"title": "my password is hunter2", "body": "b"})
    assert added.structured_content is not None  # the note the upstream stored, as it was sent
    assert (added.structured_content["title"], added.structured_content["body"]) == (REDACTED, "b")
    assert added.meta is not None
    assert audit_of(gw, added.meta[DECISION_META_KEY]).arguments == {"title": REDACTED, "body": "b"}


async def test_a_numeric_argument_above_its_cap_is_lowered_before_forwarding(gw: RunningGateway) -> None:
    async with gw.client() as client:
        for n in range(3):
            await client.call_tool("notes_add_note", {"title": "t", "body": f"note {n}"})
        found = await client.call_tool("notes_search_notes", {"query": "note", "limit": 10})
    assert found.structured_content is not None
    assert len(found.structured_content["result"]) == 2
    assert found.meta is not None
    assert audit_of(gw, found.meta[DECISION_META_KEY]).arguments == {"query": "note", "limit": 2}


async def test_a_result_field_is_redacted_after_a_result_decision(gw: RunningGateway) -> None:
    async with gw.client() as client:
        await client.call_tool("notes_add_note", {"title": "plan", "body": "merge on friday"})
        note = await client.call_tool("notes_read_note", {"note_id": 1})
    assert note.structured_content is not None
    assert (note.structured_content["id"], note.structured_content["body"]) == (1, REDACTED)
    assert "merge on friday" not in json.dumps(note.model_dump(mode="json"))
    assert note.meta is not None
    record = audit_of(gw, note.meta[RESULT_DECISION_META_KEY])
    assert (record.action, record.resource, record.allow, record.outcome) == (
        "mcp.tools/result",
        "notes_read_note",
        True,
        "redacted",
    )
    # The audit log keeps the result's size, never its content: the redacted body stays out of it.
    assert record.input is not None and record.input["result"]["content"] == []
    assert record.input["result"]["size_bytes"] > 0
    assert "merge on friday" not in json.dumps(record.input)


async def test_an_oversized_result_is_withheld_as_a_tool_error(gw: RunningGateway) -> None:
    async with gw.client() as client:
        small = await client.call_tool("echo_echo", {"text": "short"})
        large = await client.call_tool("echo_echo", {"text": "x" * 500})
    assert not small.is_error and text_of(small) == "short"
    assert large.is_error
    assert text_of(large).startswith("result withheld by policy: ")
    assert "xxxx" not in json.dumps(large.model_dump(mode="json"))
    assert large.meta is not None
    assert audit_of(gw, large.meta[RESULT_DECISION_META_KEY]).outcome == "withheld"


async def test_a_denied_result_is_a_policy_error_and_both_decisions_are_audited(gw: RunningGateway) -> None:
    async with gw.client() as client:
        with pytest.raises(MCPError) as info:
            await client.call_tool("echo_echo", {"text": "classified"})
    data = error_data(info.value)
    assert info.value.code == -32030 and data["code"] == "policy_denied"
    assert audit_of(gw, data["decision_id"]).action == "mcp.tools/result"
    gw.gateway.audit.flush()
    (call,) = [r for r in gw.store.query_audit(AuditQuery(action="mcp.tools/call")) if r.resource == "echo_echo"]
    assert (call.allow, call.outcome) == (True, "policy_denied")


async def test_a_tool_whose_definition_changed_since_it_was_pinned_is_refused(gw: RunningGateway) -> None:
    async with gw.client() as client:
        with pytest.raises(MCPError) as info:
            await client.call_tool("echo_slow_echo", {"text": "hi", "delay_ms": 0})
        assert not (await client.call_tool("echo_echo", {"text": "still served"})).is_error
    assert info.value.code == -32037 and error_data(info.value)["code"] == "tool_not_pinned"


async def test_an_unknown_obligation_fails_closed(gw: RunningGateway) -> None:
    async with gw.client() as client:
        with pytest.raises(MCPError) as info:
            await client.call_tool("echo_add_alias", {"name": "shout"})
        tools = [t.name for t in (await client.list_tools()).tools]
    assert info.value.code == -32031 and error_data(info.value)["code"] == "policy_unavailable"
    assert "echo_shout" not in tools  # never forwarded


async def test_the_inputs_the_gateway_builds_are_valid_against_the_schema(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = config_for(tmp_path, [notes_upstream(tmp_path), echo_upstream()])
    async with running_gateway(config, tmp_path / "r.db") as shipped:
        pdp = shipped.gateway.pdp
        decide = pdp.decide
        seen: list[PolicyInput] = []

        def capture(input_doc: PolicyInput, *args: Any, **kwargs: Any) -> Decision:
            seen.append(input_doc)
            return decide(input_doc, *args, **kwargs)

        monkeypatch.setattr(pdp, "decide", capture)
        async with shipped.client(shipped.api_key("acme", "alice", ["editor"])) as client:
            await client.list_tools()
            await client.list_resources()
            await client.list_resource_templates()
            await client.list_prompts()
            await client.call_tool("notes_add_note", {"title": "t", "body": "b"})
            await client.read_resource("notes+notes://index")
            await client.get_prompt("notes_summarize_notes", {"topic": "t"})
            with pytest.raises(MCPError):  # decided, then refused by notes, which offers no completions
                await client.complete(
                    types.PromptReference(type="ref/prompt", name="notes_summarize_notes"),
                    {"name": "topic", "value": ""},
                )
    validator = validators.validator_for(SCHEMA, default=Draft202012Validator)(SCHEMA)
    errors: dict[str, list[str]] = {}
    for doc in seen:
        found = sorted(validator.iter_errors(cast(dict[str, Any], doc)), key=lambda e: list(e.absolute_path))
        errors[doc["action"]] = [e.message for e in found]
    assert errors == {
        action: []
        for action in (
            "mcp.tools/list",
            "mcp.resources/list",
            "mcp.prompts/list",
            "mcp.tools/call",
            "mcp.tools/result",
            "mcp.resources/read",
            "mcp.prompts/get",
            "mcp.completion/complete",
        )
    }
    assert all(doc.get("delegation") == [] for doc in seen)
