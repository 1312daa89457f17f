"""Errors the mesh raises on purpose, each with a stable snake_case `code`.

Adapters map these to their wire (MCP JSON-RPC codes in `mcp_gateway/wire_errors.py`); a test checks
that every subclass appears in every table. Foreign errors are wrapped at the boundary with
`raise X from exc` so upstream and pydantic text never reaches a client.
"""

from __future__ import annotations

from typing import Any, ClassVar


class MeshError(Exception):
    """Base of every deliberate meshgate error."""

    code: ClassVar[str] = "mesh_error"
    message: ClassVar[str] = "meshgate error"

    def __init__(self, message: str | None = None, **data: Any) -> None:
        self.detail = message or self.message
        self.data: dict[str, Any] = data
        super().__init__(self.detail)


class ConfigError(MeshError):
    code = "config_invalid"
    message = "the configuration is invalid"


class MissingDependency(MeshError):
    code = "missing_dependency"
    message = "an optional dependency is not installed"

    def __init__(self, package: str, extra: str) -> None:
        super().__init__(f"{package} is not installed; install it with: pip install 'meshgate[{extra}]'", extra=extra)


class Unauthenticated(MeshError):
    code = "unauthenticated"
    message = "missing or invalid credentials"


class PolicyDenied(MeshError):
    code = "policy_denied"
    message = "denied by policy"


class PolicyUnavailable(MeshError):
    """The engine failed or the decision was undefined: the mesh fails closed."""

    code = "policy_unavailable"
    message = "the policy engine could not decide; denied (fail closed)"


class PolicyBundleInvalid(MeshError):
    code = "policy_bundle_invalid"
    message = "the policy bundle does not compile"


class ToolNotFound(MeshError):
    code = "tool_not_found"
    message = "unknown tool"


class ResourceNotFound(MeshError):
    code = "resource_not_found"
    message = "unknown resource"


class PromptNotFound(MeshError):
    code = "prompt_not_found"
    message = "unknown prompt"


class AgentNotFound(MeshError):
    code = "agent_not_found"
    message = "no agent with that id is registered with the broker"


class ToolNotPinned(MeshError):
    """The policy requires the tool's pinned definition and the upstream now serves another one."""

    code = "tool_not_pinned"
    message = "the tool's definition changed since it was pinned"


class InvalidArguments(MeshError):
    code = "invalid_arguments"
    message = "the arguments do not match the tool's input schema"


class PayloadTooLarge(MeshError):
    code = "payload_too_large"
    message = "the request exceeds the configured size limit"


class UpstreamUnavailable(MeshError):
    code = "upstream_unavailable"
    message = "the upstream server is unavailable"


class UpstreamTimeout(MeshError):
    code = "upstream_timeout"
    message = "the upstream server did not answer in time"


class UpstreamError(MeshError):
    """The upstream answered with a protocol error; its text is not relayed."""

    code = "upstream_error"
    message = "the upstream server returned an error"


class CardInvalid(MeshError):
    """An agent card that cannot be fetched or is not a valid A2A agent card."""

    code = "card_invalid"
    message = "the agent card is missing or invalid"


class CardSignatureInvalid(MeshError):
    """A card's JWS signatures do not verify against the organisation's trusted keys (or are required and absent)."""

    code = "card_signature_invalid"
    message = "the agent card's signature does not verify"


class ModelNotFound(MeshError):
    code = "model_not_found"
    message = "no inference node serves that model"


class NodeUnavailable(MeshError):
    """No node serving the model answers, or the node died mid-generation."""

    code = "node_unavailable"
    message = "no inference node for that model is available"


class EngineError(MeshError):
    """The model engine failed a generation; the node keeps serving."""

    code = "engine_error"
    message = "the model engine failed"


class RegistryError(MeshError):
    code = "registry_error"
    message = "registry operation failed"


class NotFound(RegistryError):
    code = "not_found"
    message = "no such entry in the registry"


class AlreadyExists(RegistryError):
    code = "already_exists"
    message = "an entry with that name already exists"


def all_error_classes() -> list[type[MeshError]]:
    """Every concrete MeshError subclass, for the wire-table completeness test."""
    seen: list[type[MeshError]] = []
    stack: list[type[MeshError]] = [MeshError]
    while stack:
        cls = stack.pop()
        seen.append(cls)
        stack.extend(cls.__subclasses__())
    return seen
