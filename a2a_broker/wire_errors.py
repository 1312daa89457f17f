"""The A2A wire mapping of every `MeshError`: one table, registered with the a2a-sdk's error maps.

A2A defines no authorization or upstream errors (spec §3.3.2: "JSON-RPC custom error", HTTP 401/403,
gRPC UNAUTHENTICATED/PERMISSION_DENIED), so the broker uses the gateway's codes in the JSON-RPC server
range (-32030 policy_denied, -32031 policy_unavailable, -32032..-32034 upstream, -32035 payload_too_large,
-32036 unauthenticated, -32038 agent_not_found) with the HTTP status and gRPC code the spec names. The SDK
looks errors up by exact class in module-level maps, so each class is registered there (`register()`; not
public SDK API — re-check on SDK upgrades). `ErrorInfo.metadata` carries `code`, and for policy
outcomes `reasons` ("; "-joined: metadata values are strings) and `decision_id`.
"""

from __future__ import annotations

from typing import ClassVar, cast

from a2a.server.jsonrpc_models import JSONRPCError
from a2a.server.request_handlers import response_helpers
from a2a.utils import errors as a2a_errors
from a2a.utils.errors import A2AError, ErrorMapping, InternalError, InvalidParamsError

from meshgate import errors


class MeshWireError(A2AError):
    """A meshgate condition on the A2A wire; subclasses fix the code, HTTP status and gRPC status."""

    jsonrpc_code: ClassVar[int] = -32603
    mapping: ClassVar[ErrorMapping] = ErrorMapping(500, "INTERNAL", "INTERNAL_ERROR")


class PolicyDeniedError(MeshWireError):
    jsonrpc_code = -32030
    mapping = ErrorMapping(403, "PERMISSION_DENIED", "POLICY_DENIED")


class PolicyUnavailableError(MeshWireError):
    jsonrpc_code = -32031
    mapping = ErrorMapping(503, "UNAVAILABLE", "POLICY_UNAVAILABLE")


class TargetUnavailableError(MeshWireError):
    jsonrpc_code = -32032
    mapping = ErrorMapping(502, "UNAVAILABLE", "TARGET_UNAVAILABLE")


class TargetTimeoutError(MeshWireError):
    jsonrpc_code = -32033
    mapping = ErrorMapping(504, "DEADLINE_EXCEEDED", "TARGET_TIMEOUT")


class TargetError(MeshWireError):
    jsonrpc_code = -32034
    mapping = ErrorMapping(502, "INTERNAL", "TARGET_ERROR")


class MessageTooLargeError(MeshWireError):
    jsonrpc_code = -32035
    mapping = ErrorMapping(413, "RESOURCE_EXHAUSTED", "PAYLOAD_TOO_LARGE")


class UnauthenticatedError(MeshWireError):
    jsonrpc_code = -32036
    mapping = ErrorMapping(401, "UNAUTHENTICATED", "UNAUTHENTICATED")


class AgentNotFoundError(MeshWireError):
    jsonrpc_code = -32038
    mapping = ErrorMapping(404, "NOT_FOUND", "AGENT_NOT_FOUND")


A2A_ERROR: dict[type[errors.MeshError], type[A2AError]] = {
    errors.MeshError: InternalError,
    errors.ConfigError: InternalError,
    errors.MissingDependency: InternalError,
    errors.RegistryError: InternalError,
    errors.NotFound: InternalError,
    errors.AlreadyExists: InternalError,
    errors.PolicyBundleInvalid: InternalError,
    errors.CardInvalid: InternalError,
    errors.CardSignatureInvalid: InternalError,
    errors.ToolNotFound: InvalidParamsError,
    errors.PromptNotFound: InvalidParamsError,
    errors.ResourceNotFound: InvalidParamsError,
    errors.ToolNotPinned: InvalidParamsError,
    errors.InvalidArguments: InvalidParamsError,
    errors.PayloadTooLarge: MessageTooLargeError,
    errors.AgentNotFound: AgentNotFoundError,
    errors.PolicyDenied: PolicyDeniedError,
    errors.PolicyUnavailable: PolicyUnavailableError,
    errors.UpstreamUnavailable: TargetUnavailableError,
    errors.UpstreamTimeout: TargetTimeoutError,
    errors.UpstreamError: TargetError,
    errors.Unauthenticated: UnauthenticatedError,
    errors.ModelNotFound: AgentNotFoundError,
    errors.NodeUnavailable: TargetUnavailableError,
    errors.EngineError: TargetError,
}
"""Every `MeshError` class -> the A2A error it leaves the broker as (a test checks completeness)."""


def to_a2a_error(exc: errors.MeshError) -> A2AError:
    metadata = {"code": exc.code}
    reasons = exc.data.get("reasons")
    if isinstance(reasons, list | tuple):
        metadata["reasons"] = "; ".join(str(r) for r in cast(list[object], reasons))
    decision_id = exc.data.get("decision_id")
    if isinstance(decision_id, str):
        metadata["decision_id"] = decision_id
    return A2A_ERROR[type(exc)](exc.detail, data=metadata)


def register() -> None:
    """Teach the SDK's JSON-RPC, REST and gRPC error maps our classes (idempotent)."""
    for cls in MeshWireError.__subclasses__():
        a2a_errors.JSON_RPC_ERROR_CODE_MAP[cls] = cls.jsonrpc_code
        a2a_errors.A2A_ERROR_MAPPING[cls] = cls.mapping
        a2a_errors.A2A_ERROR_REASONS[cls] = cls.mapping.reason
        response_helpers.EXCEPTION_MAP[cls] = JSONRPCError
    try:
        import grpc
        from a2a.server.request_handlers import grpc_handler
    except ImportError:  # the grpc extra is optional
        return
    for cls in MeshWireError.__subclasses__():
        grpc_handler._ERROR_CODE_MAP[cls] = grpc.StatusCode[cls.mapping.grpc_status]  # pyright: ignore[reportPrivateUsage]
