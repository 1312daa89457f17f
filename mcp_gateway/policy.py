"""The gateway's one policy middleware: every governed MCP request is decided before it is served.

Order per request: principal (set by the HTTP auth middleware) → catalog lookup → input-schema
validation → decision (fail closed) → its obligations on the arguments → handler → for a tool, a
second decision on its result (`mcp.tools/result`) and its obligations → audit record with the
outcome. List results are filtered to the decision's `visible` ids. Meshgate errors leave here as
MCP errors (`wire_errors`). What each obligation does is `policies/obligations.py`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, cast

import mcp_types as types
from jsonschema import Draft202012Validator, validators
from jsonschema.protocols import Validator
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from opentelemetry import trace

from mcp_gateway.catalog import Catalog, CatalogEntry
from mcp_gateway.wire_errors import to_mcp_error
from meshgate.errors import InvalidArguments, MeshError, PolicyUnavailable, ToolNotPinned, Unauthenticated
from meshgate.principal import ANONYMOUS, Principal
from policies import PolicyDecisionPoint, raise_for
from policies.decision import Decision
from policies.input import PolicyInput, ResourceDoc, ResultDoc, audited_input, subject_doc
from policies.obligations import (
    Obligations,
    cap_arguments,
    limit_max_tokens,
    redact,
    redact_tool_result,
    result_size,
    withheld_result,
)
from registry.audit import AuditLog
from registry.models import AuditRecord
from registry.usage import USAGE_META_KEY, UsageMeter, reported_usage

logger = logging.getLogger(__name__)

DECISION_META_KEY = "io.meshgate/decision_id"
RESULT_DECISION_META_KEY = "io.meshgate/result_decision_id"
RESULT_ACTION = "mcp.tools/result"


@dataclass(frozen=True, slots=True)
class _ListShape:
    """Where a list method's entries live: the decision's action, the catalog attribute, the wire keys."""

    action: str
    catalog: str
    key: str
    field: str


_LISTS = {
    "tools/list": _ListShape("mcp.tools/list", "tools", "tools", "name"),
    "resources/list": _ListShape("mcp.resources/list", "resources", "resources", "uri"),
    "resources/templates/list": _ListShape("mcp.resources/list", "templates", "resourceTemplates", "uriTemplate"),
    "prompts/list": _ListShape("mcp.prompts/list", "prompts", "prompts", "name"),
}
_CALLS = ("tools/call", "resources/read", "prompts/get", "completion/complete")


class PolicyMiddleware:
    def __init__(
        self,
        catalog: Any,
        pdp: PolicyDecisionPoint,
        audit: AuditLog,
        *,
        allow_anonymous: bool,
        meter: UsageMeter | None = None,
        metered_servers: frozenset[str] = frozenset(),
    ) -> None:
        """`catalog` is any object with a current `.catalog` snapshot (the Federation). Results of tools of
        `metered_servers` (the model fronts, which meshgate runs) are metered from their `io.meshgate/usage`."""
        self._source = catalog
        self._pdp = pdp
        self._audit = audit
        self._allow_anonymous = allow_anonymous
        self._meter = meter
        self._metered_servers = metered_servers
        self._validators: dict[str, tuple[Mapping[str, Any], Validator]] = {}

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        try:
            if ctx.method in _LISTS:
                return await self._list(ctx, call_next)
            if ctx.method in _CALLS:
                return await self._call(ctx, call_next)
            return await call_next(ctx)
        except MeshError as exc:
            raise to_mcp_error(exc) from exc

    async def _list(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        shape = _LISTS[ctx.method]
        entries: tuple[CatalogEntry, ...] = getattr(self._source.catalog, shape.catalog)
        resource: ResourceDoc = {
            "kind": "catalog",
            "id": shape.catalog,
            "items": [e.id for e in entries],
            "servers": {e.id: e.server for e in entries},
        }
        decision, policy_input = self._decide(ctx, shape.action, resource, {})
        self._record(
            ctx, decision, policy_input, shape.action, resource, {}, outcome="ok" if decision.allow else "denied"
        )
        raise_for(decision)
        return _filtered(await call_next(ctx), shape, set(decision.visible))

    async def _call(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        params = ctx.params or {}
        catalog: Catalog = self._source.catalog
        arguments: dict[str, Any] = {}
        if ctx.method == "tools/call":
            entry = catalog.tool(str(params.get("name", "")))
            arguments = _arguments(params)
            self._validate(entry, arguments)
            kind = "tool"
        elif ctx.method == "prompts/get":
            entry = catalog.prompt(str(params.get("name", "")))
            arguments = _arguments(params)
            kind = "prompt"
        elif ctx.method == "resources/read":
            entry = catalog.resource(str(params.get("uri", "")))
            kind = "resource"
        else:  # completion/complete: decided on what it completes, a prompt or a resource template
            raw_ref = params.get("ref")
            ref = cast(dict[str, Any], raw_ref) if isinstance(raw_ref, dict) else {}
            if ref.get("type") == "ref/prompt":
                entry, kind = catalog.prompt(str(ref.get("name", ""))), "prompt"
            else:
                entry, kind = catalog.template(str(ref.get("uri", ""))), "resource"
        resource: ResourceDoc = {"kind": kind, "id": entry.id, "server": entry.server, "name": entry.name}
        action = f"mcp.{ctx.method}"
        decision, policy_input = self._decide(ctx, action, resource, arguments)
        if not decision.allow:
            self._record(ctx, decision, policy_input, action, resource, arguments, outcome="denied")
            raise_for(decision)
        obligations = Obligations.parse(decision.obligations)
        # What the upstream gets, and what the audit log may keep: never the redacted values.
        forwarded = redact(cap_arguments(arguments, obligations.cap_arguments), obligations.redact_arguments)
        if obligations.max_tokens is not None:
            forwarded = limit_max_tokens(forwarded, obligations.max_tokens, _schema_default(entry, "max_tokens"))
        outcome = "error"
        try:
            if obligations.require_pinned and not entry.pinned:
                raise ToolNotPinned(
                    f"{entry.id}: its definition changed since it was pinned; refused by policy",
                    tool=entry.id,
                    decision_id=decision.decision_id,
                )
            if forwarded != arguments:
                ctx = replace(ctx, params={**params, "arguments": forwarded})
            result = await call_next(ctx)
            outcome = "tool_error" if _is_tool_error(result) else "ok"
            if self._meter is not None and entry.server in self._metered_servers:
                self._meter_usage(ctx, decision, result)
            if ctx.method == "tools/call":
                result = self._screen_result(ctx, resource, forwarded, result)
            return _stamp(result, decision.decision_id)
        except MeshError as exc:
            outcome = exc.code
            raise
        finally:
            self._record(ctx, decision, policy_input, action, resource, forwarded, outcome=outcome)

    def _screen_result(
        self,
        ctx: ServerRequestContext[Any, Any],
        resource: ResourceDoc,
        arguments: dict[str, Any],
        result: HandlerResult,
    ) -> HandlerResult:
        """Decide `mcp.tools/result` on a tool's result and apply that decision's obligations to it.

        Raises:
            PolicyDenied: the policy denies returning this result.
            PolicyUnavailable: that decision failed (fail closed).
        """
        wire = _wire(result)
        if wire is None or isinstance(result, types.InputRequiredResult):
            return result  # not the tool's result yet: the caller answers the input requests and retries
        size = result_size(wire)
        result_doc: ResultDoc = {
            "content": cast(list[Any], wire.get("content", [])),
            "isError": wire.get("isError") is True,
            "size_bytes": size,
        }
        if "structuredContent" in wire:
            result_doc["structuredContent"] = wire["structuredContent"]
        decision, policy_input = self._decide(ctx, RESULT_ACTION, resource, arguments, result=result_doc)
        if not decision.allow:
            self._record(ctx, decision, policy_input, RESULT_ACTION, resource, arguments, outcome="denied")
            raise_for(decision)
        obligations = Obligations.parse(decision.obligations)
        outcome = "ok"
        if obligations.max_result_bytes is not None and size > obligations.max_result_bytes:
            kept = {k: v for k, v in wire.items() if k not in ("content", "structuredContent", "isError")}
            wire = kept | withheld_result(size, obligations.max_result_bytes)
            outcome = "withheld"
        elif obligations.redact_result:
            wire = redact_tool_result(wire, obligations.redact_result)
            outcome = "redacted"
        self._record(ctx, decision, policy_input, RESULT_ACTION, resource, arguments, outcome=outcome)
        meta = wire.get("_meta")
        stamped: dict[str, Any] = {**(cast(dict[str, Any], meta) if isinstance(meta, dict) else {})}
        stamped[RESULT_DECISION_META_KEY] = decision.decision_id
        wire = {**wire, "_meta": stamped}
        # Back to the handler's model, so the runner serializes it for the caller's protocol revision.
        return type(result).model_validate(wire) if isinstance(result, types.Result) else wire

    def _meter_usage(self, ctx: ServerRequestContext[Any, Any], decision: Decision, result: HandlerResult) -> None:
        """Record the tokens a model front reports in its result's `_meta` against the caller."""
        wire = _wire(result)
        meta = wire.get("_meta") if wire is not None else None
        usage = cast(dict[str, Any], meta).get(USAGE_META_KEY) if isinstance(meta, dict) else None
        if not isinstance(usage, dict) or self._meter is None:
            return
        principal = self._principal(ctx)
        span_context = trace.get_current_span().get_span_context()
        self._meter.record(
            reported_usage(
                cast(dict[str, Any], usage),
                subject=principal.subject,
                tenant=principal.tenant,
                via="mcp",
                decision_id=decision.decision_id,
                trace_id=f"{span_context.trace_id:032x}" if span_context.trace_id else "",
            )
        )

    def _validate(self, entry: CatalogEntry, arguments: dict[str, Any]) -> None:
        schema = entry.input_schema
        if not schema:
            return
        cached = self._validators.get(entry.id)
        if cached is None or cached[0] is not schema:
            cls = validators.validator_for(schema, default=Draft202012Validator)
            cached = (schema, cls(schema))
            self._validators[entry.id] = cached
        error = next(iter(sorted(cached[1].iter_errors(arguments), key=lambda e: list(e.absolute_path))), None)
        if error is not None:
            where = "arguments" + "".join(f"[{p!r}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
            raise InvalidArguments(f"{entry.id}: {where}: {error.message}", tool=entry.id, path=where)

    def _decide(
        self,
        ctx: ServerRequestContext[Any, Any],
        action: str,
        resource: ResourceDoc,
        arguments: dict[str, Any],
        *,
        result: ResultDoc | None = None,
    ) -> tuple[Decision, PolicyInput]:
        principal = self._principal(ctx)
        span = trace.get_current_span()
        trace_id = span.get_span_context().trace_id
        policy_input: PolicyInput = {
            "version": 1,
            "subject": subject_doc(principal),
            "action": action,
            "resource": resource,
            "arguments": arguments,
            "delegation": [],  # direct calls only until the A2A broker delegates (issue #4)
            "context": {
                "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "trace_id": f"{trace_id:032x}" if trace_id else "",
                "request_size": _request_size(ctx),
                "client": _client_name(ctx),
                "protocol_version": ctx.protocol_version,
            },
        }
        if result is not None:
            policy_input["result"] = result
        decision = self._pdp.decide(policy_input)
        # The inbound span's `policy.*` name the request's own decision; a result decision gets its own keys.
        prefix = "policy.result" if action == RESULT_ACTION else "policy"
        span.set_attributes(
            {
                f"{prefix}.decision_id": decision.decision_id,
                f"{prefix}.allow": decision.allow,
                "enduser.id": principal.subject,
                "meshgate.tenant": principal.tenant,
            }
        )
        rate_class = decision.obligations.get("rate_class")
        if isinstance(rate_class, str) and rate_class:
            span.set_attribute(f"{prefix}.rate_class", rate_class)
        return decision, policy_input

    def _principal(self, ctx: ServerRequestContext[Any, Any]) -> Principal:
        request = ctx.request
        principal = getattr(getattr(request, "state", None), "principal", None) if request is not None else None
        if isinstance(principal, Principal):
            return principal
        if self._allow_anonymous:
            return ANONYMOUS
        raise Unauthenticated("no authenticated principal on this request")

    def _record(
        self,
        ctx: ServerRequestContext[Any, Any],
        decision: Decision,
        policy_input: PolicyInput,
        action: str,
        resource: ResourceDoc,
        arguments: dict[str, Any],
        *,
        outcome: str,
    ) -> None:
        principal = self._principal(ctx)
        kept = arguments if decision.obligations.get("audit_arguments") is True else None
        span_context = trace.get_current_span().get_span_context()
        self._audit.append(
            AuditRecord(
                decision_id=decision.decision_id,
                time=datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
                subject=principal.subject,
                tenant=principal.tenant,
                action=action,
                resource=resource["id"],
                allow=decision.allow,
                reasons=decision.reasons,
                latency_us=decision.latency_us,
                engine=decision.engine,
                bundle_revision=decision.bundle_revision,
                trace_id=f"{span_context.trace_id:032x}" if span_context.trace_id else "",
                arguments=kept,
                outcome=outcome,
                input=audited_input(policy_input, kept),
            )
        )


def _filtered(result: HandlerResult, shape: _ListShape, visible: set[str]) -> HandlerResult:
    """Keep only the visible entries of a list result (the runner hands middleware the wire dict)."""
    if isinstance(result, dict):
        items = cast(list[dict[str, Any]], result.get(shape.key, []))
        kept = [i for i in items if isinstance(i, dict) and i.get(shape.field) in visible]  # pyright: ignore[reportUnnecessaryIsInstance]
        return {**result, shape.key: kept}
    raise PolicyUnavailable(f"list result of unexpected type {type(result).__name__}; denied")


def _wire(result: HandlerResult) -> dict[str, Any] | None:
    """A handler result as its wire dict (the obligations work on JSON), or None when there is none."""
    if isinstance(result, dict):
        return result
    if isinstance(result, types.Result):
        return result.model_dump(by_alias=True, mode="json", exclude_none=True)
    return None


def _schema_default(entry: CatalogEntry, argument: str) -> object:
    properties = entry.input_schema.get("properties") if entry.input_schema else None
    spec = cast(dict[str, Any], properties).get(argument) if isinstance(properties, dict) else None
    return cast(dict[str, Any], spec).get("default") if isinstance(spec, dict) else None


def _is_tool_error(result: HandlerResult) -> bool:
    if isinstance(result, dict):
        return result.get("isError") is True
    return isinstance(result, types.CallToolResult) and result.is_error


def _stamp(result: HandlerResult, decision_id: str) -> HandlerResult:
    """Tag a served result with its decision id so a client can quote it to `meshgate audit`."""
    if isinstance(result, dict):
        meta = result.get("_meta")
        return {**result, "_meta": {**(meta if isinstance(meta, dict) else {}), DECISION_META_KEY: decision_id}}
    if isinstance(result, types.Result):
        return result.model_copy(update={"meta": {**(result.meta or {}), DECISION_META_KEY: decision_id}})
    return result


def _arguments(params: Mapping[str, Any]) -> dict[str, Any]:
    args = params.get("arguments")
    if args is None:
        return {}
    if not isinstance(args, dict):
        raise InvalidArguments("arguments must be an object")
    return dict(args)  # pyright: ignore[reportUnknownArgumentType]


def _request_size(ctx: ServerRequestContext[Any, Any]) -> int:
    headers = getattr(ctx.request, "headers", None)
    if headers is not None and headers.get("content-length", "").isdigit():
        return int(headers["content-length"])
    return len(json.dumps(ctx.params or {}, default=str))


def _client_name(ctx: ServerRequestContext[Any, Any]) -> str:
    headers = getattr(ctx.request, "headers", None)
    return str(headers.get("user-agent", "")) if headers is not None else ""
