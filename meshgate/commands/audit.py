"""`meshgate audit`: query the audit log as a table or as JSON lines."""

from __future__ import annotations

import argparse
import dataclasses
import json

from meshgate.commands import SubParsers, format_table
from meshgate.config import Config
from registry.clock import parse_since
from registry.models import AuditQuery, AuditRecord
from registry.store import RegistryStore


def add_parser(subparsers: SubParsers) -> None:
    """Register `audit` and its flags; `args.handler` becomes `run`."""
    parser = subparsers.add_parser("audit", help="query the audit log of policy decisions")
    parser.add_argument("--since", type=_since, help="ISO-8601 time, or relative: 30s, 15m, 2h, 7d")
    parser.add_argument("--subject", help="only this subject")
    parser.add_argument("--tenant", help="only this tenant")
    parser.add_argument("--action", help="only this action, e.g. mcp.tools/call")
    parser.add_argument("--decision-id", help="only this decision")
    parser.add_argument("--denied", action="store_true", help="only denied decisions")
    parser.add_argument("--limit", type=int, default=50, help="at most this many records (default 50)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, store: RegistryStore, config: Config | None = None) -> int:
    """The CLI handler; `config` is unused, accepted because every handler is called with it."""
    print(
        audit_query(
            store,
            since=args.since,
            subject=args.subject,
            tenant=args.tenant,
            action=args.action,
            decision_id=args.decision_id,
            denied_only=args.denied,
            limit=args.limit,
            as_json=args.json,
        )
    )
    return 0


def audit_query(
    store: RegistryStore,
    since: str | None = None,
    subject: str | None = None,
    tenant: str | None = None,
    action: str | None = None,
    decision_id: str | None = None,
    denied_only: bool = False,
    limit: int = 50,
    as_json: bool = False,
) -> str:
    """The matching records, newest first: a table, or JSON lines when `as_json`.

    Raises:
        ValueError: `since` is neither an ISO-8601 time nor a relative `2h`-style span.
    """
    query = AuditQuery(
        since=None if since is None else parse_since(since),
        subject=subject,
        tenant=tenant,
        action=action,
        allow=False if denied_only else None,
        decision_id=decision_id,
        limit=limit,
    )
    records = store.query_audit(query)
    if as_json:
        return "\n".join(json.dumps(dataclasses.asdict(r), ensure_ascii=False) for r in records)
    if not records:
        return "no audit records match"
    headers = ("TIME", "DECISION", "SUBJECT", "TENANT", "ACTION", "RESOURCE", "ALLOW", "REASONS")
    return format_table(headers, [_row(r) for r in records])


def _row(r: AuditRecord) -> tuple[str, ...]:
    return (
        r.time,
        r.decision_id,
        r.subject,
        r.tenant,
        r.action,
        r.resource,
        "allow" if r.allow else "deny",
        "; ".join(r.reasons),
    )


def _since(value: str) -> str:
    try:
        return parse_since(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 time or a span like 2h: {value!r}") from None
