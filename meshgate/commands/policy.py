"""`meshgate policy`: test, evaluate, explain and replay decisions of a bundle, and show what a principal may do.

Decisions come from `PolicyDecisionPoint` over `RegorusEngine` on `--bundle` (default: the config's
`policy.bundle`, else the shipped one); the rules that fired come from `policies.explain`.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from mcp_gateway.catalog import Catalog, CatalogEntry, ServerListing, namespaced_name
from meshgate.commands import SubParsers, format_table
from meshgate.config import Config
from meshgate.errors import NotFound
from meshgate.principal import Principal
from policies import DEFAULT_BUNDLE, Decision, PolicyDecisionPoint, PolicyInput, RegorusEngine, run_rego_tests
from policies.bundle import load_bundle
from policies.explain import RuleDefinition, fired_rules, rule_coverage
from policies.input import ContextDoc, build_input, catalog_resource, entry_resource
from registry.clock import parse_since
from registry.models import AuditQuery, AuditRecord
from registry.store import RegistryStore


def add_parser(subparsers: SubParsers) -> None:
    """Register `policy test|eval|explain|can|replay`; `args.handler` becomes `run`."""
    policy = subparsers.add_parser("policy", help="test, evaluate, explain and replay policy decisions")
    policy.set_defaults(handler=run)
    actions = policy.add_subparsers(dest="policy_action", required=True)
    test = actions.add_parser("test", help="run the bundle's Rego unit tests and report rule coverage")
    evaluate = actions.add_parser("eval", help="decide one input document and show the rules that fired")
    evaluate.add_argument("--input", required=True, help="a JSON input document; - for stdin")
    explain = actions.add_parser("explain", help="explain an audited decision on today's bundle")
    explain.add_argument("decision_id")
    can = actions.add_parser("can", help="what a principal may list and call among the registry's tools")
    can.add_argument("subject")
    can.add_argument("--tenant", required=True)
    can.add_argument("--role", action="append", default=[], dest="roles", help="repeat for several roles")
    replay = actions.add_parser("replay", help="re-decide audited inputs on a draft bundle; show what changes")
    replay.add_argument("--since", default="24h", help="ISO-8601 time, or relative: 30m, 24h, 7d (default 24h)")
    replay.add_argument("--limit", type=int, default=1000, help="at most this many records (default 1000)")
    for parser in (test, evaluate, explain, can, replay):
        parser.add_argument(
            "--bundle",
            required=parser is replay,
            help="bundle directory (default: policy.bundle, else the shipped one)",
        )


def run(args: argparse.Namespace, store: RegistryStore, config: Config | None = None) -> int:
    """The CLI handler. Raises `PolicyBundleInvalid` (exit 2 in `__main__`) for a bundle that does not load."""
    bundle = bundle_dir(args.bundle, config)
    query = config.policy.query if config is not None else "data.meshgate.mcp.decision"
    if args.policy_action == "test":
        text, ok = policy_test(bundle)
        print(text)
        return 0 if ok else 1
    if args.policy_action == "eval":
        raw = sys.stdin.read() if args.input == "-" else Path(args.input).read_text()
        print(json.dumps(policy_eval(bundle, query, json.loads(raw)), indent=2, ensure_ascii=False))
    elif args.policy_action == "explain":
        print(policy_explain(store, bundle, query, args.decision_id))
    elif args.policy_action == "can":
        print(policy_can(store, bundle, query, Principal(args.subject, args.tenant, tuple(args.roles), "cli"), config))
    else:
        print(policy_replay(store, bundle, query, since=parse_since(args.since), limit=args.limit))
    return 0


def bundle_dir(arg: str | None, config: Config | None) -> Path:
    if arg:
        return Path(arg)
    if config is not None and config.policy.bundle:
        return Path(config.base_dir, config.policy.bundle)
    return DEFAULT_BUNDLE


def policy_test(bundle: Path) -> tuple[str, bool]:
    """PASS/FAIL per test, a summary and the rule coverage; and whether every test passed.

    Raises:
        PolicyBundleInvalid: a module or data file does not load (the message names file:line:col).
    """
    results = run_rego_tests(bundle)
    lines = [f"{'PASS' if r.passed else 'FAIL'} {r.name}" + (f": {r.error}" if r.error else "") for r in results]
    failed = sum(not r.passed for r in results)
    lines.append(f"{len(results) - failed} passed, {failed} failed")
    coverage = rule_coverage(load_bundle(bundle, include_tests=True), [r.name for r in results])
    evaluated = sum(c.evaluated for c in coverage)
    lines.append(f"rule coverage: {evaluated} of {len(coverage)} rule definitions evaluated by the tests")
    rows = [("yes" if c.evaluated else "NO", c.rule.where, _rule_name(c.rule)) for c in coverage]
    lines.extend("  " + line for line in format_table(("TESTED", "WHERE", "RULE"), rows).splitlines())
    return "\n".join(lines), failed == 0 and bool(results)


def policy_eval(bundle: Path, query: str, input_doc: dict[str, Any]) -> dict[str, Any]:
    """The decision on `input_doc` and the rules that fired, as a JSON document.

    Raises:
        PolicyBundleInvalid: the bundle does not load.
    """
    decision = _pdp(bundle, query).decide(cast(PolicyInput, input_doc))
    return {**_decision_doc(decision), "fired": _fired(bundle, query, input_doc)}


def policy_explain(store: RegistryStore, bundle: Path, query: str, decision_id: str) -> str:
    """The audited decision, the rules that fire for its input today, and whether today's bundle agrees.

    Raises:
        NotFound: no audit record has this decision id.
        PolicyBundleInvalid: the bundle does not load.
    """
    records = store.query_audit(AuditQuery(decision_id=decision_id, limit=1))
    if not records:
        raise NotFound(f"no audit record of decision {decision_id!r}", decision_id=decision_id)
    record = records[0]
    lines = [
        f"decision {record.decision_id} at {record.time}",
        f"  subject   {record.subject} (tenant {record.tenant})",
        f"  action    {record.action} on {record.resource}",
        f"  decided   {'allow' if record.allow else 'deny'}: {'; '.join(record.reasons)}",
        f"  engine    {record.engine}, bundle revision {record.bundle_revision}",
    ]
    input_doc: dict[str, Any] | None = record.input
    if input_doc is None:
        lines.append("no input document was recorded (a record from before they were kept): nothing to re-decide")
        return "\n".join(lines)
    if input_doc.get("arguments") is None:
        # The policy kept the arguments out of the log; re-decided on none, a limit on them cannot fire.
        lines.append("its arguments were not recorded (audit_arguments was false): re-deciding without them")
        input_doc = {**input_doc, "arguments": dict[str, Any]()}
    pdp = _pdp(bundle, query)
    today = pdp.decide(cast(PolicyInput, input_doc))
    same = today.allow == record.allow and today.reasons == record.reasons
    lines.append(f"today (bundle revision {today.bundle_revision}): {'allow' if today.allow else 'deny'}: ")
    lines[-1] += "; ".join(today.reasons)
    lines.append("  the same decision" if same else "  a DIFFERENT decision from the recorded one")
    lines.append("rules that fired:")
    lines.extend(f"  {fired}" for fired in _fired(bundle, query, input_doc))
    return "\n".join(lines)


def policy_can(store: RegistryStore, bundle: Path, query: str, principal: Principal, config: Config | None) -> str:
    """Which of the registry's tools `principal` may list and call, decided on the gateway's own inputs.

    The registry records tools only; prompts and resources are known only to a running gateway.

    Raises:
        PolicyBundleInvalid: the bundle does not load.
    """
    separator = config.gateway.separator if config is not None else "_"
    listings: list[ServerListing] = []
    for server in store.list_servers():
        prefix = server.name if server.prefix is None else server.prefix
        tools = tuple(
            CatalogEntry(id=namespaced_name(prefix, separator, t.name), server=server.name, name=t.name, wire=None)
            for t in store.list_tools(server.name)
        )
        listings.append(ServerListing(server.name, tools=tools, namespaced=bool(prefix)))
    catalog = Catalog.build(listings)
    pdp = _pdp(bundle, query)
    context = _cli_context()
    listing = pdp.decide(
        build_input(
            principal, "mcp.tools/list", catalog_resource("tools", {e.id: e.server for e in catalog.tools}), {}, context
        )
    )
    visible = set(listing.visible) if listing.allow else set[str]()
    rows: list[tuple[str, str, str, str]] = []
    for entry in catalog.tools:
        call = pdp.decide(
            build_input(
                principal, "mcp.tools/call", entry_resource("tool", entry.id, entry.server, entry.name), {}, context
            )
        )
        rows.append(
            (entry.id, "yes" if entry.id in visible else "no", "yes" if call.allow else "no", "; ".join(call.reasons))
        )
    who = f"{principal.subject} (tenant {principal.tenant}, roles: {', '.join(principal.roles) or '-'})"
    head = [f"{who}, bundle revision {listing.bundle_revision}: {len(visible)} of {len(rows)} tools visible"]
    if not rows:
        head.append("no tools recorded in the registry (meshgate servers add, or meshgate up, records them)")
    else:
        head.append(format_table(("TOOL", "LIST", "CALL", "WHY (CALL, WITHOUT ARGUMENTS)"), rows))
    head.append("prompts and resources are not recorded in the registry: ask a running gateway")
    return "\n".join(head)


def policy_replay(store: RegistryStore, bundle: Path, query: str, *, since: str, limit: int) -> str:
    """Re-decide every audited input since `since` on `bundle`; the decisions that would change, and counts.

    Raises:
        PolicyBundleInvalid: the bundle does not load.
    """
    pdp = _pdp(bundle, query)
    records = store.query_audit(AuditQuery(since=since, limit=limit))
    changed: list[tuple[AuditRecord, Decision]] = []
    skipped = 0
    for record in records:
        if record.input is None:
            skipped += 1
            continue
        # Arguments the policy kept out of the log are replayed as none, as `explain` does.
        draft = pdp.decide(cast(PolicyInput, {**record.input, "arguments": record.input.get("arguments") or {}}))
        if draft.allow != record.allow:
            changed.append((record, draft))
    lines: list[str] = []
    if changed:
        rows = [
            (
                r.decision_id,
                r.subject,
                r.action,
                r.resource,
                "allow → deny" if r.allow else "deny → allow",
                "; ".join(d.reasons),
            )
            for r, d in changed
        ]
        lines.append(format_table(("DECISION", "SUBJECT", "ACTION", "RESOURCE", "CHANGE", "NEW REASONS"), rows))
    to_deny = sum(r.allow for r, _ in changed)
    lines.append(
        f"replayed {len(records) - skipped} of {len(records)} records on revision {pdp.engine.revision}: "
        f"{to_deny} allowed → denied, {len(changed) - to_deny} denied → allowed, "
        f"{len(records) - skipped - len(changed)} unchanged, {skipped} without a recorded input"
    )
    return "\n".join(lines)


def _pdp(bundle: Path, query: str) -> PolicyDecisionPoint:
    return PolicyDecisionPoint(RegorusEngine(bundle), query)


def _decision_doc(decision: Decision) -> dict[str, Any]:
    return {
        "decision_id": decision.decision_id,
        "allow": decision.allow,
        "reasons": list(decision.reasons),
        "obligations": decision.obligations,
        "engine": decision.engine,
        "bundle_revision": decision.bundle_revision,
        **({"error": decision.error} if decision.error else {}),
    }


def _fired(bundle: Path, query: str, input_doc: dict[str, Any]) -> list[str]:
    return [f"{d.where}  {_rule_name(d)}" for d in fired_rules(load_bundle(bundle), query, input_doc)]


def _rule_name(rule: RuleDefinition) -> str:
    return f"default {rule.path}" if rule.default else rule.path


def _cli_context() -> ContextDoc:
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {"time": now, "trace_id": "", "request_size": 0, "client": "meshgate policy", "protocol_version": ""}
