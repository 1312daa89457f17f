"""The gateway's MCP request handlers: lists from the snapshot, calls forwarded to the owning upstream.

Handlers never decide: the policy middleware has already allowed the request when they run. Each
forwarded call gets a child span naming the upstream. Progress from the upstream is relayed to the
caller. When an upstream needs input mid-call (sampling, elicitation, roots), a 2026-07-28 caller
gets the `InputRequiredResult` to answer and retry through the gateway; a handshake-era caller is
asked over its own connection and the gateway retries for it. The upstream's own `_meta` stamps
(its serverInfo) are dropped so the client sees the gateway, not the server behind it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import mcp_types as types
from mcp.client._input_required import run_input_required_driver
from mcp.server.context import ServerRequestContext
from mcp.shared.dispatcher import ProgressFnT
from mcp.shared.message import ServerMessageMetadata
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from opentelemetry import trace

from mcp_gateway.federation import Federation

_tracer = trace.get_tracer("meshgate.mcp_gateway")
_DROP_META = (types.SERVER_INFO_META_KEY,)
R = TypeVar("R", bound=types.Result)
Retry = Callable[[types.InputResponses | None, str | None], Awaitable[Any]]

_INPUT_RESULT_TYPES: dict[type[Any], type[types.Result]] = {
    types.CreateMessageRequest: types.CreateMessageResult,
    types.ElicitRequest: types.ElicitResult,
    types.ListRootsRequest: types.ListRootsResult,
}


class GatewayHandlers:
    def __init__(self, federation: Federation) -> None:
        self._federation = federation

    async def list_tools(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[e.wire for e in self._federation.catalog.tools])  # type: ignore[misc]

    async def list_resources(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        return types.ListResourcesResult(resources=[e.wire for e in self._federation.catalog.resources])  # type: ignore[misc]

    async def list_resource_templates(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        templates = [e.wire for e in self._federation.catalog.templates]
        return types.ListResourceTemplatesResult(resource_templates=templates)  # type: ignore[arg-type]

    async def list_prompts(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListPromptsResult:
        return types.ListPromptsResult(prompts=[e.wire for e in self._federation.catalog.prompts])  # type: ignore[misc]

    async def call_tool(
        self, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult | types.InputRequiredResult:
        entry = self._federation.catalog.tool(params.name)
        upstream = self._federation.connection(entry.server)
        progress = _progress_relay(ctx)

        async def send(responses: types.InputResponses | None, state: str | None) -> Any:
            return await upstream.call_tool(
                entry.name, params.arguments, progress=progress, input_responses=responses, request_state=state
            )

        with _upstream_span("tools/call", entry.server, entry.name):
            result = await _with_input(ctx, send, params.input_responses, params.request_state)
        return _without_upstream_meta(result)

    async def read_resource(
        self, ctx: ServerRequestContext[Any, Any], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult | types.InputRequiredResult:
        entry = self._federation.catalog.resource(params.uri)
        upstream = self._federation.connection(entry.server)

        async def send(responses: types.InputResponses | None, state: str | None) -> Any:
            return await upstream.read_resource(entry.name, input_responses=responses, request_state=state)

        with _upstream_span("resources/read", entry.server, entry.name):
            result = await _with_input(ctx, send, params.input_responses, params.request_state)
        if isinstance(result, types.ReadResourceResult):
            contents = [
                c.model_copy(update={"uri": self._federation.resource_id(entry.server, c.uri)}) for c in result.contents
            ]
            result = result.model_copy(update={"contents": contents})
        return _without_upstream_meta(result)

    async def get_prompt(
        self, ctx: ServerRequestContext[Any, Any], params: types.GetPromptRequestParams
    ) -> types.GetPromptResult | types.InputRequiredResult:
        entry = self._federation.catalog.prompt(params.name)
        upstream = self._federation.connection(entry.server)

        async def send(responses: types.InputResponses | None, state: str | None) -> Any:
            return await upstream.get_prompt(
                entry.name, params.arguments, input_responses=responses, request_state=state
            )

        with _upstream_span("prompts/get", entry.server, entry.name):
            result = await _with_input(ctx, send, params.input_responses, params.request_state)
        return _without_upstream_meta(result)

    async def complete(
        self, ctx: ServerRequestContext[Any, Any], params: types.CompleteRequestParams
    ) -> types.CompleteResult:
        ref = params.ref
        if isinstance(ref, types.PromptReference):
            entry = self._federation.catalog.prompt(ref.name)
            upstream_ref: types.PromptReference | types.ResourceTemplateReference = ref.model_copy(
                update={"name": entry.name}
            )
        else:
            entry = self._federation.catalog.template(ref.uri)
            upstream_ref = ref.model_copy(update={"uri": entry.name})
        context = params.context.arguments if params.context is not None else None
        with _upstream_span("completion/complete", entry.server, entry.name):
            result = await self._federation.connection(entry.server).complete(
                upstream_ref, {"name": params.argument.name, "value": params.argument.value}, context
            )
        return _without_upstream_meta(result)


def _progress_relay(ctx: ServerRequestContext[Any, Any]) -> ProgressFnT | None:
    """Relay upstream progress only when the caller asked for it (a progress token in `_meta`)."""
    if ctx.meta is None or ctx.meta.get("progress_token") is None:
        return None
    return ctx.session.report_progress


async def _with_input(
    ctx: ServerRequestContext[Any, Any],
    send: Retry,
    responses: types.InputResponses | None,
    state: str | None,
) -> Any:
    result = await send(responses, state)
    if not isinstance(result, types.InputRequiredResult) or ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
        return result  # a 2026-07-28 caller answers the input requests itself and retries through the gateway

    async def ask_caller(_: str, request: types.InputRequest) -> types.InputResponse | types.ErrorData:
        result_type = _INPUT_RESULT_TYPES[type(request)]
        metadata = ServerMessageMetadata(related_request_id=ctx.request_id)
        return await ctx.session.send_request(request, result_type, metadata=metadata)  # type: ignore[return-value]

    return await run_input_required_driver(result, dispatch=ask_caller, retry=send)


def _upstream_span(method: str, server: str, name: str) -> Any:
    return _tracer.start_as_current_span(
        f"upstream {method} {server}",
        kind=trace.SpanKind.CLIENT,
        attributes={"mcp.method.name": method, "meshgate.upstream": server, "gen_ai.tool.name": name},
    )


def _without_upstream_meta(result: R) -> R:
    if not result.meta or not any(k in result.meta for k in _DROP_META):
        return result
    meta = {k: v for k, v in result.meta.items() if k not in _DROP_META}
    return result.model_copy(update={"meta": meta or None})
