"""The registry's domain records: frozen, protocol-free, what every store reads and writes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Transport = Literal["stdio", "http"]


@dataclass(frozen=True, slots=True)
class UpstreamServer:
    """An upstream MCP server the gateway federates.

    `command` is the stdio child (argv); `url` the streamable-HTTP endpoint. `launch` is an optional
    argv the gateway starts and supervises before connecting to `url` (the example HTTP server).
    `headers` are the gateway's own credentials for that upstream, never the client's.
    """

    name: str
    transport: Transport
    command: tuple[str, ...] = ()
    url: str = ""
    env: dict[str, str] = field(default_factory=dict[str, str])
    headers: dict[str, str] = field(default_factory=dict[str, str])
    launch: tuple[str, ...] = ()
    cwd: str = ""
    prefix: str | None = None
    """Namespace of its tools in the catalog; None means the server name, "" means no prefix."""
    timeout_s: float = 30.0
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class ToolRecord:
    server: str
    name: str
    description: str
    input_schema: dict[str, Any]
    output_schema: dict[str, Any] | None
    definition_hash: str
    """sha256 over the canonical JSON of name, description and both schemas."""
    first_seen: str = ""
    last_seen: str = ""


@dataclass(frozen=True, slots=True)
class Tenant:
    name: str
    display_name: str = ""


@dataclass(frozen=True, slots=True)
class ApiKey:
    key_id: str
    tenant: str
    subject: str
    roles: tuple[str, ...]
    secret_hash: str
    """sha256 hex of the secret; the secret itself is shown once at creation and never stored."""
    created_at: str = ""
    revoked: bool = False


@dataclass(frozen=True, slots=True)
class AgentRecord:
    """An A2A agent registered with the broker; its card is kept exactly as it was fetched or given."""

    agent_id: str
    """^[a-z][a-z0-9-]{0,30}$, chosen at registration."""
    organization: str
    """The org it belongs to: the card's provider.organization unless given at registration."""
    card_json: str
    """The card exactly as fetched/given, served byte-for-byte and never rewritten (a signed card stays valid)."""
    card_url: str
    """Where it was fetched from; "" when given as a document."""
    signed: bool
    """True when the card carried signatures and they verified against the organisation's trusted keys."""
    registered_at: str


@dataclass(frozen=True, slots=True)
class BrokerTask:
    """A task relayed through the A2A broker, and the principal that created it: only that one may read,
    cancel, resubscribe to, list or configure it, through whichever broker replica it reaches."""

    task_id: str
    owner: str
    """The creating principal as `issuer|tenant|subject` (`a2a_broker.delegation.owner_key`)."""
    agent_id: str
    """The registered agent that runs the task."""
    skill: str
    """The skill the creating message was decided on ("" when none)."""
    created_at: str = ""
    """Set by the store when the task is first recorded."""


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One decision of the policy decision point, as appended to the audit log."""

    decision_id: str
    time: str
    subject: str
    tenant: str
    action: str
    resource: str
    allow: bool
    reasons: tuple[str, ...]
    latency_us: int
    engine: str = ""
    bundle_revision: str = ""
    trace_id: str = ""
    arguments: dict[str, Any] | None = None
    """Only when the policy's `audit_arguments` obligation allows it."""
    outcome: str = ""
    """What happened after the decision: "ok", an error code, or "" for list/deny."""
    input: dict[str, Any] | None = None
    """The input document the decision was made on, with `arguments` null unless kept as above;
    None on records written before it was stored. `meshgate policy explain` and `replay` re-decide it."""


@dataclass(frozen=True, slots=True)
class AuditQuery:
    since: str | None = None
    subject: str | None = None
    tenant: str | None = None
    action: str | None = None
    allow: bool | None = None
    decision_id: str | None = None
    limit: int = 100


@dataclass(frozen=True, slots=True)
class InferenceNode:
    """A model-serving node (`meshgate node`): registered at start, its load reported every few seconds."""

    name: str
    """Unique node id (^[a-z][a-z0-9-]{0,30}$)."""
    model: str
    """The model id it serves (`smollm2`); the router groups nodes by it."""
    engine: str
    """`llama.cpp` or `vllm`."""
    address: str
    """host:port of its gRPC service (KServe v2 Open Inference Protocol)."""
    capacity: int
    """Generations it runs at once; more are queued by the node."""
    in_flight: int = 0
    queued: int = 0
    registered_at: str = ""
    heartbeat_at: str = ""
    """When it last reported its load; a stale heartbeat takes it out of the router's rotation."""


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """Tokens one generation spent, metered against who asked, through which path, on which node."""

    time: str
    subject: str
    tenant: str
    model: str
    node: str
    prompt_tokens: int
    completion_tokens: int
    via: Literal["mcp", "a2a"]
    decision_id: str = ""
    """The policy decision that allowed the call (joins the audit log)."""
    trace_id: str = ""


@dataclass(frozen=True, slots=True)
class UsageQuery:
    since: str | None = None
    subject: str | None = None
    tenant: str | None = None
    model: str | None = None
    limit: int = 1000
