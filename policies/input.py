"""The one input document every decision of the mesh is made on (version 1).

Shape (documented in policies/README.md):
    {"version": 1,
     "subject": {"id", "tenant", "roles", "issuer"},
     "action": "mcp.tools/call" | "mcp.tools/list" | "mcp.resources/read" | "mcp.resources/list"
               | "mcp.prompts/get" | "mcp.prompts/list",
     "resource": {"kind": "tool"|"resource"|"prompt"|"catalog", "id", "server", "name",
                  "items": [...], "servers": {id: server} (list actions only: the candidates)},
     "arguments": {...} (call/get actions),
     "context": {"time", "trace_id", "request_size", "client", "protocol_version"}}
Built only by adapters (the gateway's policy middleware); the engines never change it.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

from meshgate.principal import Principal

INPUT_VERSION = 1

Action = Literal[
    "mcp.tools/list",
    "mcp.tools/call",
    "mcp.resources/list",
    "mcp.resources/read",
    "mcp.prompts/list",
    "mcp.prompts/get",
    "mcp.completion/complete",
]


class SubjectDoc(TypedDict):
    id: str
    tenant: str
    roles: list[str]
    issuer: str


class ResourceDoc(TypedDict):
    kind: Literal["tool", "resource", "prompt", "catalog"]
    id: str
    server: NotRequired[str]
    name: NotRequired[str]
    items: NotRequired[list[str]]
    servers: NotRequired[dict[str, str]]


class ContextDoc(TypedDict):
    time: str
    trace_id: str
    request_size: int
    client: str
    protocol_version: str


class PolicyInput(TypedDict):
    version: int
    subject: SubjectDoc
    action: str
    resource: ResourceDoc
    arguments: dict[str, Any]
    context: ContextDoc


def subject_doc(principal: Principal) -> SubjectDoc:
    return {
        "id": principal.subject,
        "tenant": principal.tenant,
        "roles": list(principal.roles),
        "issuer": principal.issuer,
    }
