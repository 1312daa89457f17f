"""The shipped Rego bundle on the real regorus engine: its decisions, its tests, loading and reload."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any, cast

import pytest

from meshgate.errors import PolicyBundleInvalid, PolicyUnavailable
from policies import DEFAULT_BUNDLE, PolicyDecisionPoint, RegorusEngine, run_rego_tests
from policies.input import PolicyInput, ResourceDoc

TOOLS = ["notes_search_notes", "notes_delete_note", "toolbox_calculate", "toolbox_hash_text", "weather_forecast"]
RESOURCES = ["notes+notes://index", "toolbox+toolbox://units", "weather+weather://today"]


def policy_input(
    tenant: str,
    action: str,
    resource: dict[str, Any],
    *,
    roles: tuple[str, ...] = (),
    arguments: dict[str, Any] | None = None,
) -> PolicyInput:
    return {
        "version": 1,
        "subject": {"id": "tester", "tenant": tenant, "roles": list(roles), "issuer": "apikey"},
        "action": action,
        "resource": cast(ResourceDoc, resource),
        "arguments": arguments or {},
        "context": {
            "time": "2025-06-01T12:00:00.000Z",
            "trace_id": "",
            "request_size": 64,
            "client": "pytest",
            "protocol_version": "2025-06-18",
        },
    }


def tool(tool_id: str) -> dict[str, Any]:
    server, name = tool_id.split("_", 1)
    return {"kind": "tool", "id": tool_id, "server": server, "name": name}


def catalog(kind: str, items: list[str]) -> dict[str, Any]:
    return {"kind": "catalog", "id": kind, "items": items}


@pytest.fixture(scope="module")
def pdp() -> PolicyDecisionPoint:
    return PolicyDecisionPoint(RegorusEngine(DEFAULT_BUNDLE))


DECISIONS: list[tuple[str, PolicyInput, bool, list[str], dict[str, Any]]] = [
    (
        "tenant calls a tool its patterns match",
        policy_input("acme", "mcp.tools/call", tool("notes_search_notes"), arguments={"query": "q", "limit": 10}),
        True,
        ["tenant acme may call notes_*"],
        {"audit_arguments": True},
    ),
    (
        "tenant calls a tool outside its patterns",
        policy_input("globex", "mcp.tools/call", tool("toolbox_hash_text") | {"id": "notes_search_notes"}),
        False,
        ["tool notes_search_notes is not allowed for tenant globex"],
        {"audit_arguments": True},
    ),
    (
        "anonymous tenant calls a tool it is not listed for",
        policy_input("public", "mcp.tools/call", tool("toolbox_hash_text")),
        False,
        ["tool toolbox_hash_text is not allowed for tenant public"],
        {"audit_arguments": True},
    ),
    (
        "argument over its limit",
        policy_input("acme", "mcp.tools/call", tool("notes_search_notes"), arguments={"limit": 500}),
        False,
        ["argument limit=500 exceeds the maximum 50 for notes_search_notes"],
        {"audit_arguments": True},
    ),
    (
        "missing required role",
        policy_input("acme", "mcp.tools/call", tool("notes_delete_note"), roles=("viewer",)),
        False,
        ["notes_delete_note requires role editor"],
        {"audit_arguments": True},
    ),
    (
        "admin calls outside the tenant patterns",
        policy_input("globex", "mcp.tools/call", tool("notes_delete_note"), roles=("admin",)),
        True,
        ["role admin may call any tool"],
        {"audit_arguments": True},
    ),
    (
        "exempt tool keeps its arguments out of the audit log",
        policy_input("acme", "mcp.tools/call", tool("notes_add_note"), arguments={"text": "private"}),
        True,
        ["tenant acme may call notes_*"],
        {"audit_arguments": False},
    ),
    (
        "tool list is filtered to the tenant patterns",
        policy_input("globex", "mcp.tools/list", catalog("tools", TOOLS)),
        True,
        ["tenant globex may see 2 of 5 tools"],
        {"audit_arguments": True, "visible": ["toolbox_calculate", "toolbox_hash_text"]},
    ),
    (
        "unknown tenant sees an empty list",
        policy_input("initech", "mcp.tools/list", catalog("tools", TOOLS)),
        True,
        ["unknown tenant initech"],
        {"audit_arguments": True, "visible": []},
    ),
    (
        "resource list is filtered by server",
        policy_input("acme", "mcp.resources/list", catalog("resources", RESOURCES)),
        True,
        ["tenant acme may see 2 of 3 resources"],
        {"audit_arguments": True, "visible": ["notes+notes://index", "toolbox+toolbox://units"]},
    ),
    (
        "resource of a server outside the tenant",
        policy_input(
            "globex", "mcp.resources/read", {"kind": "resource", "id": "notes+notes://index", "server": "notes"}
        ),
        False,
        ["resource notes+notes://index is not allowed for tenant globex"],
        {"audit_arguments": True},
    ),
    (
        "prompt matching the tenant patterns",
        policy_input("acme", "mcp.prompts/get", {"kind": "prompt", "id": "notes_summarize", "server": "notes"}),
        True,
        ["tenant acme may get notes_*"],
        {"audit_arguments": True},
    ),
    (
        "unsupported action",
        policy_input("acme", "mcp.sampling/createMessage", tool("notes_search_notes"), roles=("admin",)),
        False,
        ["unsupported action mcp.sampling/createMessage"],
        {"audit_arguments": True},
    ),
]


@pytest.mark.parametrize(
    ("input_doc", "allow", "reasons", "obligations"), [d[1:] for d in DECISIONS], ids=[d[0] for d in DECISIONS]
)
def test_shipped_policy_decides_as_documented(
    pdp: PolicyDecisionPoint, input_doc: PolicyInput, allow: bool, reasons: list[str], obligations: dict[str, Any]
) -> None:
    decision = pdp.decide(input_doc)

    assert (decision.allow, list(decision.reasons), decision.obligations) == (allow, reasons, obligations)
    assert decision.error == ""
    assert decision.engine == "regorus"
    assert decision.bundle_revision == pdp.engine.revision


def test_shipped_rego_unit_tests_all_pass() -> None:
    results = run_rego_tests(DEFAULT_BUNDLE)

    assert len(results) >= 20
    assert [r for r in results if not r.passed] == []
    assert all(r.name.startswith(("data.meshgate.mcp_test.test_", "data.meshgate.a2a_test.test_")) for r in results)
    assert any(r.name.startswith("data.meshgate.a2a_test.test_") for r in results)


def test_rego_test_runner_reports_failures_and_errors(tmp_path: Path) -> None:
    write(tmp_path / "rego" / "p.rego", "package p\n\nx := input.x\n")
    write(
        tmp_path / "rego" / "p_test.rego",
        "package p_test\n\n"
        'test_passes if data.p.x == 1 with input as {"x": 1}\n\n'
        'test_fails if data.p.x == 2 with input as {"x": 1}\n\n'
        "test_is_undefined if data.p.x\n\n"
        "test_errors if 1 / 0 == 1\n\n"
        "test_not_true := 5\n\n"
        "test_function(y) if y\n",
    )

    results = {r.name.removeprefix("data.p_test."): r for r in run_rego_tests(tmp_path)}

    assert {name: r.passed for name, r in results.items()} == {
        "test_passes": True,
        "test_fails": False,
        "test_is_undefined": False,
        "test_errors": False,
        "test_not_true": False,
    }
    assert results["test_errors"].error == "rego/p_test.rego:9:18: divide by zero"
    assert results["test_fails"].error == ""


def test_test_modules_are_not_served(tmp_path: Path) -> None:
    bundle = copy_bundle(tmp_path)
    write(bundle / "rego" / "meshgate" / "broken_test.rego", "package meshgate.broken_test\n\ntest_x if {\n")

    RegorusEngine(bundle)


def test_syntax_error_names_its_file_and_line(tmp_path: Path) -> None:
    bundle = copy_bundle(tmp_path)
    write(bundle / "rego" / "meshgate" / "extra.rego", "package meshgate.extra\n\nx if {\n\ty :=\n}\n")

    with pytest.raises(PolicyBundleInvalid) as caught:
        RegorusEngine(bundle)

    assert caught.value.code == "policy_bundle_invalid"
    assert "rego/meshgate/extra.rego:4:" in caught.value.detail
    assert "Stack backtrace" not in caught.value.detail


def test_rego_v0_syntax_is_rejected(tmp_path: Path) -> None:
    write(tmp_path / "rego" / "old.rego", "package old\n\nallow { true }\n")

    with pytest.raises(PolicyBundleInvalid) as caught:
        RegorusEngine(tmp_path)

    assert "rego/old.rego:3:" in caught.value.detail


def test_invalid_data_json_names_its_file_and_line(tmp_path: Path) -> None:
    bundle = copy_bundle(tmp_path)
    write(bundle / "data" / "extra.json", '{\n  "a": \n}\n')

    with pytest.raises(PolicyBundleInvalid) as caught:
        RegorusEngine(bundle)

    assert "extra.json:3:" in caught.value.detail


def test_data_files_merge_under_data_and_may_not_redefine_a_value(tmp_path: Path) -> None:
    bundle = copy_bundle(tmp_path)
    write(
        bundle / "data" / "limits.json",
        '{"meshgate": {"argument_limits": {"notes_search_notes": {"limit": {"max": 9}}}}}',
    )

    with pytest.raises(PolicyBundleInvalid) as caught:
        RegorusEngine(bundle)

    assert caught.value.code == "policy_bundle_invalid"
    assert "data.meshgate.argument_limits.notes_search_notes.limit.max" in caught.value.detail

    write(
        bundle / "data" / "limits.json", '{"meshgate": {"argument_limits": {"toolbox_calculate": {"n": {"max": 3}}}}}'
    )
    pdp = PolicyDecisionPoint(RegorusEngine(bundle))
    doc = policy_input("acme", "mcp.tools/call", tool("toolbox_calculate"), arguments={"n": 4})
    assert pdp.decide(doc).reasons == ("argument n=4 exceeds the maximum 3 for toolbox_calculate",)
    assert pdp.decide(
        policy_input("acme", "mcp.tools/call", tool("notes_search_notes"), arguments={"limit": 51})
    ).reasons == ("argument limit=51 exceeds the maximum 50 for notes_search_notes",)


def test_revision_hashes_the_served_files(tmp_path: Path) -> None:
    bundle = copy_bundle(tmp_path)
    shipped = RegorusEngine(DEFAULT_BUNDLE).revision

    assert len(shipped) == 12 and int(shipped, 16) >= 0
    assert RegorusEngine(bundle).revision == shipped
    write(bundle / "rego" / "meshgate" / "mcp_test.rego", "package meshgate.mcp_test\n")
    assert RegorusEngine(bundle).revision == shipped
    write(bundle / "data" / "more.json", "{}")
    assert RegorusEngine(bundle).revision != shipped


def test_reload_serves_the_new_bundle(tmp_path: Path) -> None:
    bundle = copy_bundle(tmp_path)
    engine = RegorusEngine(bundle)
    pdp = PolicyDecisionPoint(engine)
    doc = policy_input("globex", "mcp.tools/call", tool("toolbox_hash_text"))
    before = engine.revision
    assert pdp.decide(doc).allow

    tenants = bundle / "data" / "tenants.json"
    tenants.write_text(tenants.read_text().replace('"tools": ["toolbox_*"]', '"tools": ["toolbox_calculate"]'))

    assert engine.reload() != before
    assert not pdp.decide(doc).allow


def test_failed_reload_keeps_the_last_good_bundle(tmp_path: Path) -> None:
    bundle = copy_bundle(tmp_path)
    engine = RegorusEngine(bundle)
    pdp = PolicyDecisionPoint(engine)
    doc = policy_input("acme", "mcp.tools/call", tool("notes_search_notes"))
    before = engine.revision

    write(bundle / "rego" / "meshgate" / "mcp.rego", "package meshgate.mcp\n\ndecision := {\n")
    with pytest.raises(PolicyBundleInvalid) as caught:
        engine.reload()

    assert caught.value.code == "policy_bundle_invalid"
    assert engine.revision == before
    assert pdp.decide(doc).allow


def test_other_threads_evaluate_on_their_own_engine_and_see_reloads(tmp_path: Path) -> None:
    bundle = copy_bundle(tmp_path)
    engine = RegorusEngine(bundle)
    pdp = PolicyDecisionPoint(engine)
    doc = policy_input("globex", "mcp.tools/call", tool("toolbox_hash_text"))
    seen: list[bool] = []

    def decide_on_a_thread() -> None:
        thread = threading.Thread(target=lambda: seen.append(pdp.decide(doc).allow))
        thread.start()
        thread.join()

    decide_on_a_thread()
    tenants = bundle / "data" / "tenants.json"
    tenants.write_text(tenants.read_text().replace('"tools": ["toolbox_*"]', '"tools": []'))
    engine.reload()
    decide_on_a_thread()

    assert seen == [True, False]


def test_undefined_rule_evaluates_to_none() -> None:
    doc = policy_input("initech", "mcp.tools/call", tool("toolbox_calculate"))

    assert RegorusEngine(DEFAULT_BUNDLE).evaluate("data.meshgate.mcp.tenant", dict(doc)) is None


def test_unknown_rule_path_is_an_engine_error() -> None:
    doc = policy_input("acme", "mcp.tools/call", tool("toolbox_calculate"))

    with pytest.raises(PolicyUnavailable) as caught:
        RegorusEngine(DEFAULT_BUNDLE).evaluate("data.meshgate.nothing.here", dict(doc))

    assert caught.value.code == "policy_unavailable"


def test_runtime_error_in_the_policy_fails_closed(tmp_path: Path) -> None:
    write(
        tmp_path / "rego" / "p.rego", 'package meshgate.mcp\n\ndecision := {"allow": 1 / count(input.arguments) > 0}\n'
    )
    pdp = PolicyDecisionPoint(RegorusEngine(tmp_path))

    decision = pdp.decide(policy_input("acme", "mcp.tools/call", tool("toolbox_calculate")))

    assert decision.allow is False
    assert decision.reasons == ("policy engine error: policy evaluation failed: rego/p.rego:3:25: divide by zero",)
    assert decision.error.startswith("policy_unavailable: ")


def test_unknown_builtin_is_found_only_when_evaluated(tmp_path: Path) -> None:
    write(tmp_path / "rego" / "p.rego", 'package meshgate.mcp\n\ndecision := {"allow": crypto.sha256("x") == ""}\n')
    pdp = PolicyDecisionPoint(RegorusEngine(tmp_path))

    decision = pdp.decide(policy_input("acme", "mcp.tools/call", tool("toolbox_calculate")))

    assert decision.allow is False
    assert "crypto.sha256" in decision.error


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def copy_bundle(tmp_path: Path) -> Path:
    bundle = tmp_path / "bundle"
    shutil.copytree(DEFAULT_BUNDLE / "rego", bundle / "rego")
    shutil.copytree(DEFAULT_BUNDLE / "data", bundle / "data")
    return bundle
