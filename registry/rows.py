"""Row codecs shared by the SQL stores: column lists and model <-> row tuples, JSON as text.

SQLite hands JSON columns back as text and PostgreSQL's `json` type as parsed values; `_load`
accepts both, so one codec serves every store.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, LiteralString, cast

from registry.clock import canonical_time
from registry.models import (
    AgentRecord,
    ApiKey,
    AuditQuery,
    AuditRecord,
    BrokerTask,
    InferenceNode,
    Tenant,
    ToolRecord,
    Transport,
    UpstreamServer,
    UsageQuery,
    UsageRecord,
)

SERVER_COLUMNS: tuple[LiteralString, ...] = (
    "name",
    "transport",
    "command",
    "url",
    "env",
    "headers",
    "launch",
    "cwd",
    "prefix",
    "timeout_s",
    "enabled",
)
TOOL_COLUMNS: tuple[LiteralString, ...] = (
    "server",
    "name",
    "description",
    "input_schema",
    "output_schema",
    "definition_hash",
    "first_seen",
    "last_seen",
)
TENANT_COLUMNS: tuple[LiteralString, ...] = ("name", "display_name")
API_KEY_COLUMNS: tuple[LiteralString, ...] = (
    "key_id",
    "tenant",
    "subject",
    "roles",
    "secret_hash",
    "created_at",
    "revoked",
)
AUDIT_COLUMNS: tuple[LiteralString, ...] = (
    "decision_id",
    "time",
    "subject",
    "tenant",
    "action",
    "resource",
    "allow",
    "reasons",
    "latency_us",
    "engine",
    "bundle_revision",
    "trace_id",
    "arguments",
    "outcome",
    "input",
)
AGENT_COLUMNS: tuple[LiteralString, ...] = (
    "agent_id",
    "organization",
    "card_json",
    "card_url",
    "signed",
    "registered_at",
)
NODE_COLUMNS: tuple[LiteralString, ...] = (
    "name",
    "model",
    "engine",
    "address",
    "capacity",
    "in_flight",
    "queued",
    "registered_at",
    "heartbeat_at",
)
USAGE_COLUMNS: tuple[LiteralString, ...] = (
    "time",
    "subject",
    "tenant",
    "model",
    "node",
    "prompt_tokens",
    "completion_tokens",
    "via",
    "decision_id",
    "trace_id",
)
BROKER_TASK_COLUMNS: tuple[LiteralString, ...] = ("task_id", "owner", "agent_id", "skill", "created_at")

Row = Sequence[Any]


def dumps(value: object) -> str | None:
    """JSON text, or None for SQL NULL.

    `default=str` because tool arguments are arbitrary: a value JSON cannot encode must not turn
    an audit record into one that can never be written.
    """
    if value is None:
        return None
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _load(value: object) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def server_row(s: UpstreamServer) -> tuple[object, ...]:
    return (
        s.name,
        s.transport,
        dumps(list(s.command)),
        s.url,
        dumps(s.env),
        dumps(s.headers),
        dumps(list(s.launch)),
        s.cwd,
        s.prefix,
        s.timeout_s,
        s.enabled,
    )


def server_from_row(row: Row) -> UpstreamServer:
    name, transport, command, url, env, headers, launch, cwd, prefix, timeout_s, enabled = row
    return UpstreamServer(
        name=name,
        transport=cast(Transport, transport),
        command=tuple(_load(command)),
        url=url,
        env=dict(_load(env)),
        headers=dict(_load(headers)),
        launch=tuple(_load(launch)),
        cwd=cwd,
        prefix=prefix,
        timeout_s=float(timeout_s),
        enabled=bool(enabled),
    )


def tool_row(t: ToolRecord) -> tuple[object, ...]:
    return (
        t.server,
        t.name,
        t.description,
        dumps(t.input_schema),
        dumps(t.output_schema),
        t.definition_hash,
        t.first_seen,
        t.last_seen,
    )


def tool_from_row(row: Row) -> ToolRecord:
    server, name, description, input_schema, output_schema, definition_hash, first_seen, last_seen = row
    return ToolRecord(
        server=server,
        name=name,
        description=description,
        input_schema=dict(_load(input_schema)),
        output_schema=None if output_schema is None else dict(_load(output_schema)),
        definition_hash=definition_hash,
        first_seen=first_seen,
        last_seen=last_seen,
    )


def tenant_from_row(row: Row) -> Tenant:
    return Tenant(name=row[0], display_name=row[1])


def api_key_row(k: ApiKey) -> tuple[object, ...]:
    return (k.key_id, k.tenant, k.subject, dumps(list(k.roles)), k.secret_hash, k.created_at, k.revoked)


def api_key_from_row(row: Row) -> ApiKey:
    key_id, tenant, subject, roles, secret_hash, created_at, revoked = row
    return ApiKey(
        key_id=key_id,
        tenant=tenant,
        subject=subject,
        roles=tuple(_load(roles)),
        secret_hash=secret_hash,
        created_at=created_at,
        revoked=bool(revoked),
    )


def agent_row(a: AgentRecord) -> tuple[object, ...]:
    return (a.agent_id, a.organization, a.card_json, a.card_url, a.signed, a.registered_at)


def agent_from_row(row: Row) -> AgentRecord:
    agent_id, organization, card_json, card_url, signed, registered_at = row
    return AgentRecord(
        agent_id=agent_id,
        organization=organization,
        card_json=card_json,
        card_url=card_url,
        signed=bool(signed),
        registered_at=registered_at,
    )


def node_row(n: InferenceNode) -> tuple[object, ...]:
    return (n.name, n.model, n.engine, n.address, n.capacity, n.in_flight, n.queued, n.registered_at, n.heartbeat_at)


def node_from_row(row: Row) -> InferenceNode:
    name, model, engine, address, capacity, in_flight, queued, registered_at, heartbeat_at = row
    return InferenceNode(
        name=name,
        model=model,
        engine=engine,
        address=address,
        capacity=int(capacity),
        in_flight=int(in_flight),
        queued=int(queued),
        registered_at=registered_at,
        heartbeat_at=heartbeat_at,
    )


def broker_task_row(t: BrokerTask) -> tuple[object, ...]:
    return (t.task_id, t.owner, t.agent_id, t.skill, t.created_at)


def broker_task_from_row(row: Row) -> BrokerTask:
    task_id, owner, agent_id, skill, created_at = row
    return BrokerTask(task_id=task_id, owner=owner, agent_id=agent_id, skill=skill, created_at=created_at)


def usage_row(u: UsageRecord) -> tuple[object, ...]:
    return (
        u.time,
        u.subject,
        u.tenant,
        u.model,
        u.node,
        u.prompt_tokens,
        u.completion_tokens,
        u.via,
        u.decision_id,
        u.trace_id,
    )


def usage_from_row(row: Row) -> UsageRecord:
    time, subject, tenant, model, node, prompt_tokens, completion_tokens, via, decision_id, trace_id = row
    return UsageRecord(
        time=time,
        subject=subject,
        tenant=tenant,
        model=model,
        node=node,
        prompt_tokens=int(prompt_tokens),
        completion_tokens=int(completion_tokens),
        via=via,
        decision_id=decision_id,
        trace_id=trace_id,
    )


def audit_row(r: AuditRecord) -> tuple[object, ...]:
    return (
        r.decision_id,
        r.time,
        r.subject,
        r.tenant,
        r.action,
        r.resource,
        r.allow,
        dumps(list(r.reasons)),
        r.latency_us,
        r.engine,
        r.bundle_revision,
        r.trace_id,
        dumps(r.arguments),
        r.outcome,
        dumps(r.input),
    )


def audit_from_row(row: Row) -> AuditRecord:
    (decision_id, time, subject, tenant, action, resource, allow, reasons, latency_us) = row[:9]
    engine, bundle_revision, trace_id, arguments, outcome, input_doc = row[9:]
    return AuditRecord(
        decision_id=decision_id,
        time=time,
        subject=subject,
        tenant=tenant,
        action=action,
        resource=resource,
        allow=bool(allow),
        reasons=tuple(_load(reasons)),
        latency_us=int(latency_us),
        engine=engine,
        bundle_revision=bundle_revision,
        trace_id=trace_id,
        arguments=None if arguments is None else dict(_load(arguments)),
        outcome=outcome,
        input=None if input_doc is None else dict(_load(input_doc)),
    )


def merge_tools(
    stored: dict[str, tuple[str, str]], server: str, tools: Sequence[ToolRecord], now: str
) -> tuple[list[ToolRecord], list[str]]:
    """The rows that replace a server's tool set, and the names whose definition hash changed.

    `stored` maps name -> (definition_hash, first_seen). `first_seen` survives while the definition
    is unchanged and restarts when it changes, so it always dates the definition now in force.
    New names are not "changed": there was nothing to compare with.
    """
    latest = {t.name: t for t in tools}  # a repeated name: the last definition wins
    rows: list[ToolRecord] = []
    changed: list[str] = []
    for name, tool in latest.items():
        before = stored.get(name)
        first_seen = now
        if before is not None:
            if before[0] == tool.definition_hash:
                first_seen = before[1]
            else:
                changed.append(name)
        rows.append(
            ToolRecord(
                server=server,
                name=name,
                description=tool.description,
                input_schema=tool.input_schema,
                output_schema=tool.output_schema,
                definition_hash=tool.definition_hash,
                first_seen=first_seen,
                last_seen=now,
            )
        )
    return rows, changed


def audit_filters(query: AuditQuery) -> list[tuple[LiteralString, LiteralString, object]]:
    """(column, operator, value) for each filter set in `query`; `since` is made canonical first."""
    filters: list[tuple[LiteralString, LiteralString, object]] = []
    if query.since is not None:
        filters.append(("time", ">=", canonical_time(query.since)))
    for column in ("subject", "tenant", "action", "decision_id"):
        value = getattr(query, column)
        if value is not None:
            filters.append((column, "=", value))
    if query.allow is not None:
        filters.append(("allow", "=", query.allow))
    return filters


def usage_filters(query: UsageQuery) -> list[tuple[LiteralString, LiteralString, object]]:
    """(column, operator, value) for each filter set in `query`; `since` is made canonical first."""
    filters: list[tuple[LiteralString, LiteralString, object]] = []
    if query.since is not None:
        filters.append(("time", ">=", canonical_time(query.since)))
    for column in ("subject", "tenant", "model"):
        value = getattr(query, column)
        if value is not None:
            filters.append((column, "=", value))
    return filters
