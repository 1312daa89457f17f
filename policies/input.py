"""The one input document every decision of the mesh is made on (version 1).

Shape (JSON Schema: policies/schema/input.v1.json; examples: policies/examples/*.json):
    {"version": 1,
     "subject": {"id", "tenant", "roles", "issuer"},
     "action": "mcp.tools/call" | "mcp.tools/result" | "mcp.tools/list" | ... | "a2a.message/send" | ...,
     "resource": {"kind": "tool"|"resource"|"prompt"|"catalog"|"agent"|"task", "id", "server", "name",
                  "agent", "skill", "items": [...], "servers": {id: server} (list actions: the candidates)},
     "arguments": {...} (MCP actions; {} when there are none), "message": {...} (A2A, later),
     "result": {...} (mcp.tools/result only: the tool's result before it is returned),
     "delegation": [{"subject", "agent", "scopes"}...] ([] for a direct call),
     "context": {"time", "trace_id", "request_size", "client", "protocol_version"}}
Built only by adapters (the gateway's policy middleware); the engines never change it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, NotRequired, TypedDict

from meshgate.principal import Principal

INPUT_VERSION = 1

Action = Literal[
    "mcp.tools/list",
    "mcp.tools/call",
    "mcp.tools/result",
    "mcp.resources/list",
    "mcp.resources/read",
    "mcp.prompts/list",
    "mcp.prompts/get",
    "mcp.completion/complete",
    "a2a.message/send",
    "a2a.message/stream",
    "a2a.tasks/get",
    "a2a.tasks/cancel",
    "a2a.agents/discover",
]


class SubjectDoc(TypedDict):
    id: str
    tenant: str
    roles: list[str]
    issuer: str


class AgentDoc(TypedDict):
    organization: str
    skills: list[str]


class ResourceDoc(TypedDict):
    kind: Literal["tool", "resource", "prompt", "catalog", "agent", "task"]
    id: str
    server: NotRequired[str]
    name: NotRequired[str]
    agent: NotRequired[str]
    skill: NotRequired[str]
    organization: NotRequired[str]
    """A2A: the organisation that owns the target agent (the source organisation is `subject.tenant`)."""
    items: NotRequired[list[str]]
    servers: NotRequired[dict[str, str]]
    agents: NotRequired[dict[str, AgentDoc]]
    """`a2a.agents/discover`: candidate agent id -> its organisation and skill ids."""
    operation: NotRequired[str]
    """`a2a.admin`: what is done to the agent registry (`add`, `list`, `remove`)."""


class ContextDoc(TypedDict):
    time: str
    trace_id: str
    request_size: int
    client: str
    protocol_version: str


class ResultDoc(TypedDict):
    """`mcp.tools/result`: the tool's result as it would be returned, and its size."""

    content: list[Any]
    structuredContent: NotRequired[Any]
    isError: bool
    size_bytes: int


class DelegationHop(TypedDict):
    """One hop of a delegated call: who delegated, through which agent, with which scopes."""

    subject: str
    agent: str
    scopes: list[str]


class PolicyInput(TypedDict):
    version: int
    subject: SubjectDoc
    action: str
    resource: ResourceDoc
    arguments: dict[str, Any]
    message: NotRequired[dict[str, Any]]
    result: NotRequired[ResultDoc]
    # The gateway always sends it ([] for direct calls) and the schema requires it; NotRequired only
    # keeps hand-written inputs in tests short.
    delegation: NotRequired[list[DelegationHop]]
    context: ContextDoc


def subject_doc(principal: Principal) -> SubjectDoc:
    return {
        "id": principal.subject,
        "tenant": principal.tenant,
        "roles": list(principal.roles),
        "issuer": principal.issuer,
    }


def catalog_resource(catalog: str, servers: Mapping[str, str]) -> ResourceDoc:
    """The resource of a list action: the candidate ids (in `servers`' order) and each one's server."""
    return {"kind": "catalog", "id": catalog, "items": list(servers), "servers": dict(servers)}


def entry_resource(kind: Literal["tool", "resource", "prompt"], entry_id: str, server: str, name: str) -> ResourceDoc:
    """The resource of a call, get or read: the catalog id, its server and the upstream's own name."""
    return {"kind": kind, "id": entry_id, "server": server, "name": name}


def build_input(
    principal: Principal, action: str, resource: ResourceDoc, arguments: dict[str, Any], context: ContextDoc
) -> PolicyInput:
    return {
        "version": INPUT_VERSION,
        "subject": subject_doc(principal),
        "action": action,
        "resource": resource,
        "arguments": arguments,
        "delegation": [],  # direct calls only until the A2A broker delegates (issue #4)
        "context": context,
    }


def audited_input(input_doc: PolicyInput, arguments: dict[str, Any] | None) -> dict[str, Any]:
    """The input document as the audit log keeps it: `arguments` are what the record keeps (None when
    the `audit_arguments` obligation withholds them); a tool result keeps only its size and error flag
    (its content may be what a `redact_result` obligation hides, and may be large); the rest is exactly
    what was decided on."""
    doc: dict[str, Any] = dict(input_doc)
    doc["arguments"] = arguments
    if "result" in input_doc:
        result = input_doc["result"]
        doc["result"] = {"content": [], "isError": result["isError"], "size_bytes": result["size_bytes"]}
    return doc
