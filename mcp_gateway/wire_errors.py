"""The MCP wire mapping of every `MeshError`: one table, JSON-RPC error codes.

MCP reserves -32602 for unknown tools and bad arguments and -32002 for unknown resources; meshgate's
own conditions use -32030..-32039 of the JSON-RPC server range. `error.data` always carries the
stable `code` string (and `reasons`/`decision_id` for policy outcomes), documented in the README.
"""

from __future__ import annotations

from typing import Any

from mcp.shared.exceptions import MCPError
from mcp_types import INTERNAL_ERROR, INVALID_PARAMS

from meshgate import errors

RESOURCE_NOT_FOUND = -32002

JSONRPC_CODE: dict[type[errors.MeshError], int] = {
    errors.MeshError: INTERNAL_ERROR,
    errors.ConfigError: INTERNAL_ERROR,
    errors.MissingDependency: INTERNAL_ERROR,
    errors.RegistryError: INTERNAL_ERROR,
    errors.NotFound: INTERNAL_ERROR,
    errors.AlreadyExists: INTERNAL_ERROR,
    errors.PolicyBundleInvalid: INTERNAL_ERROR,
    # A2A registration errors: the gateway never raises them; the broker maps them in its own table.
    errors.CardInvalid: INTERNAL_ERROR,
    errors.CardSignatureInvalid: INTERNAL_ERROR,
    errors.AgentNotFound: INTERNAL_ERROR,  # the broker's; the gateway never raises it
    errors.ToolNotFound: INVALID_PARAMS,
    errors.PromptNotFound: INVALID_PARAMS,
    errors.InvalidArguments: INVALID_PARAMS,
    errors.ResourceNotFound: RESOURCE_NOT_FOUND,
    errors.PolicyDenied: -32030,
    errors.PolicyUnavailable: -32031,
    errors.UpstreamUnavailable: -32032,
    errors.UpstreamTimeout: -32033,
    errors.UpstreamError: -32034,
    errors.PayloadTooLarge: -32035,
    errors.Unauthenticated: -32036,
    errors.ToolNotPinned: -32037,
    # Inference errors reach MCP clients as the model tool's error result (inference_node/mcp_server.py).
    errors.ModelNotFound: INVALID_PARAMS,
    errors.NodeUnavailable: -32032,
    errors.EngineError: -32034,
}


def to_mcp_error(exc: errors.MeshError) -> MCPError:
    data: dict[str, Any] = {"code": exc.code, **{k: v for k, v in exc.data.items() if _is_json(v)}}
    return MCPError(code=JSONRPC_CODE[type(exc)], message=exc.detail, data=data)


def _is_json(value: Any) -> bool:
    return isinstance(value, str | int | float | bool | list | tuple | dict) or value is None
