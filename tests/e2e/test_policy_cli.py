"""`meshgate policy test|eval|explain|can|replay` on the real engine, a real SQLite registry and a real gateway."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml

from mcp_gateway.policy import DECISION_META_KEY
from meshgate.__main__ import main
from policies import DEFAULT_BUNDLE, PolicyDecisionPoint, RegorusEngine
from policies.input import PolicyInput, audited_input
from registry.hashing import tool_definition_hash
from registry.models import AuditQuery, AuditRecord, ToolRecord, UpstreamServer
from registry.sqlite_store import SqliteStore
from tests.e2e.gateway_harness import config_for, notes_upstream, running_gateway

pytestmark = pytest.mark.e2e


def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    config = tmp_path / "meshgate.yaml"
    if not config.exists():
        config.write_text(yaml.safe_dump({"registry": {"url": "sqlite:///registry.db"}}))
    code = main(["-c", str(config), *args])
    out, err = capsys.readouterr()
    return code, out, err


def draft_bundle(tmp_path: Path) -> Path:
    draft = tmp_path / "draft"
    shutil.copytree(DEFAULT_BUNDLE / "rego", draft / "rego")
    shutil.copytree(DEFAULT_BUNDLE / "data", draft / "data")
    return draft


def call_input(tenant: str, tool: str, arguments: dict[str, Any]) -> PolicyInput:
    server, name = tool.split("_", 1)
    return {
        "version": 1,
        "subject": {"id": "alice", "tenant": tenant, "roles": [], "issuer": "apikey"},
        "action": "mcp.tools/call",
        "resource": {"kind": "tool", "id": tool, "server": server, "name": name},
        "arguments": arguments,
        "delegation": [],
        "context": {
            "time": "2025-06-01T12:00:00.000Z",
            "trace_id": "",
            "request_size": 2,
            "client": "",
            "protocol_version": "",
        },
    }


def record_of(decision_id: str, input_doc: PolicyInput, *, keep_input: bool = True) -> AuditRecord:
    """An audit record as the gateway writes it, from a real decision on the shipped bundle."""
    decision = PolicyDecisionPoint(RegorusEngine(DEFAULT_BUNDLE)).decide(input_doc)
    return AuditRecord(
        decision_id=decision_id,
        time="2099-01-01T00:00:00.000000Z",
        subject=input_doc["subject"]["id"],
        tenant=input_doc["subject"]["tenant"],
        action=input_doc["action"],
        resource=input_doc["resource"]["id"],
        allow=decision.allow,
        reasons=decision.reasons,
        latency_us=decision.latency_us,
        engine=decision.engine,
        bundle_revision=decision.bundle_revision,
        arguments=input_doc["arguments"],
        input=audited_input(input_doc, input_doc["arguments"]) if keep_input else None,
    )


def test_policy_test_passes_on_the_shipped_bundle_and_reports_rule_coverage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = cli(tmp_path, capsys, "policy", "test")
    assert code == 0
    assert "PASS data.meshgate.mcp_test.test_tenant_may_call_a_tool_its_patterns_match" in out
    assert "FAIL" not in out and " 0 failed" in out
    assert "rule coverage:" in out
    assert "rego/meshgate/mcp.rego:" in out and "data.meshgate.mcp.decision" in out


def test_a_failing_rego_test_fails_the_command_and_an_untested_rule_shows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    draft = draft_bundle(tmp_path)
    (draft / "rego" / "extra.rego").write_text("package meshgate.extra\n\nnever if {\n\tinput.x == 1\n}\n")
    (draft / "rego" / "extra_test.rego").write_text("package meshgate.extra_test\n\ntest_wrong if false\n")
    code, out, _ = cli(tmp_path, capsys, "policy", "test", "--bundle", str(draft))
    assert code == 1
    assert "FAIL data.meshgate.extra_test.test_wrong" in out and " 1 failed" in out
    assert [line.split()[:2] for line in out.splitlines() if "data.meshgate.extra.never" in line] == [
        ["NO", "rego/extra.rego:3"]
    ]


def test_invalid_rego_is_an_error_naming_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    draft = draft_bundle(tmp_path)
    (draft / "rego" / "meshgate" / "mcp.rego").write_text("package meshgate.mcp\n\nallow if {\n\tinput.x ==\n}\n")
    code, _, err = cli(tmp_path, capsys, "policy", "test", "--bundle", str(draft))
    assert code == 2
    assert "policy_bundle_invalid" in err and "rego/meshgate/mcp.rego:5" in err


def test_eval_prints_the_decision_and_the_rules_that_fired(tmp_path: Path) -> None:
    document = call_input("acme", "notes_search_notes", {"query": "x", "limit": 80})
    done = subprocess.run(
        [sys.executable, "-m", "meshgate", "policy", "eval", "--input", "-"],
        input=json.dumps(document),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["allow"] is False
    assert result["reasons"] == ["argument limit=80 exceeds the maximum 50 for notes_search_notes"]
    assert len(result["decision_id"]) == 32 and result["engine"] == "regorus"
    fired = [entry.split()[-1] for entry in result["fired"]]
    assert "data.meshgate.mcp.deny" in fired and "data.meshgate.mcp.grant" in fired
    assert "data.meshgate.mcp.allow" in fired  # the default: no allow definition held
    assert all(entry.startswith("rego/meshgate/mcp.rego:") for entry in result["fired"])


def test_can_shows_which_recorded_tools_a_principal_may_list_and_call(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = SqliteStore(tmp_path / "registry.db")
    for server, names in (("notes", ("search_notes", "delete_note")), ("toolbox", ("calculate",))):
        store.add_server(UpstreamServer(name=server, transport="stdio", command=("true",)))
        schema: dict[str, Any] = {"type": "object"}
        store.record_tools(
            server,
            [ToolRecord(server, n, "", schema, None, tool_definition_hash(n, "", schema, None)) for n in names],
        )
    store.close()
    code, out, _ = cli(tmp_path, capsys, "policy", "can", "bob", "--tenant", "globex")
    assert code == 0
    rows = {line.split()[0]: line.split()[1:3] for line in out.splitlines() if line.startswith(("notes_", "toolbox_"))}
    assert rows == {
        "notes_delete_note": ["no", "no"],
        "notes_search_notes": ["no", "no"],
        "toolbox_calculate": ["yes", "yes"],
    }
    assert "1 of 3 tools visible" in out
    _, out, _ = cli(tmp_path, capsys, "policy", "can", "alice", "--tenant", "acme", "--role", "editor")
    assert "3 of 3 tools visible" in out


def test_replay_shows_a_recorded_allow_that_a_draft_bundle_would_deny(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = SqliteStore(tmp_path / "registry.db")
    store.append_audit(
        [
            record_of("allowed-search", call_input("acme", "notes_search_notes", {"query": "x", "limit": 5})),
            record_of("allowed-calc", call_input("acme", "toolbox_calculate", {"expression": "1"})),
            record_of("denied-globex", call_input("globex", "notes_search_notes", {"query": "x"})),
            record_of("old", call_input("acme", "notes_search_notes", {}), keep_input=False),
        ]
    )
    store.close()
    draft = draft_bundle(tmp_path)
    tenants = draft / "data" / "tenants.json"
    data = json.loads(tenants.read_text())
    data["meshgate"]["tenants"]["acme"]["tools"] = ["toolbox_*"]  # the draft takes notes away from acme
    tenants.write_text(json.dumps(data))

    code, out, _ = cli(tmp_path, capsys, "policy", "replay", "--bundle", str(draft), "--since", "1d")
    assert code == 0
    (changed,) = [line for line in out.splitlines() if line.startswith("allowed-search")]
    assert changed.split()[1:4] == ["alice", "mcp.tools/call", "notes_search_notes"]
    assert "allow → deny" in changed and "not allowed for tenant acme" in changed
    assert "1 allowed → denied, 0 denied → allowed, 2 unchanged, 1 without a recorded input" in out


def test_explain_reexplains_a_decision_recorded_by_a_running_gateway(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async def call() -> tuple[str, str]:
        async with running_gateway(config_for(tmp_path, [notes_upstream(tmp_path)]), tmp_path / "registry.db") as gw:
            async with gw.client(gw.api_key("acme", "alice")) as client:
                found = await client.call_tool("notes_search_notes", {"query": "x", "limit": 5})
                added = await client.call_tool("notes_add_note", {"title": "t", "body": "secret"})
            gw.gateway.audit.flush()
            assert found.meta is not None and added.meta is not None
            return found.meta[DECISION_META_KEY], added.meta[DECISION_META_KEY]

    found_id, added_id = anyio.run(call)
    store = SqliteStore(tmp_path / "registry.db")
    (record,) = store.query_audit(AuditQuery(decision_id=found_id))
    store.close()
    assert record.input is not None and record.input["arguments"] == {"query": "x", "limit": 5}

    code, out, _ = cli(tmp_path, capsys, "policy", "explain", found_id)
    assert code == 0
    assert f"decision {found_id}" in out and "alice (tenant acme)" in out
    assert "mcp.tools/call on notes_search_notes" in out and "the same decision" in out
    assert "data.meshgate.mcp.grant" in out

    _, out, _ = cli(tmp_path, capsys, "policy", "explain", added_id)
    assert "arguments were not recorded" in out and "the same decision" in out

    code, _, err = cli(tmp_path, capsys, "policy", "explain", "no-such-decision")
    assert code == 2 and "not_found" in err
