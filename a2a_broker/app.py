"""Assemble the A2A broker: its agent card, the SDK's JSON-RPC and HTTP+JSON bindings, one handler.

Addressing: a peer reaches a registered agent through the broker by setting the A2A `tenant` field
(spec §1.6 multi-tenancy; `SendMessageRequest.tenant`, `GetTaskRequest.tenant`, …) to the agent's
registry id. It is the spec's own per-request routing field, so every binding carries it without
extensions: JSON-RPC `params.tenant`, HTTP+JSON as the path prefix `{path}/rest/{agent_id}/message:send`
(the SDK mounts every REST route under `/{tenant}`), and an SDK client sends it from an interface's
`tenant` or the request. Task calls need no tenant (the broker remembers each task's agent); given,
it must match. Which skill is asked for: `metadata["io.meshgate/skill"]` on the message, else the
target's only skill; the delegation chain rides in `metadata["io.meshgate/delegation"]`
(`delegation.py`).

Peers on A2A 0.3 (no `A2A-Version` header, 0.3 method names and shapes) are served by the SDK's 0.3
compatibility layer on the same URLs (JSON-RPC `message/send`, `message/stream`, `tasks/get`,
`tasks/cancel`, `tasks/resubscribe`, `tasks/pushNotificationConfig/*`; HTTP+JSON `/v1/...`). 0.3 has no
`tenant`, so such a peer names the target in message metadata `io.meshgate/agent`. The card lists only
1.0 interfaces: the layer is enabled on the routes only, so the card carries no legacy 0.3 fields.
A 1.0 method without the header is a 0.3 request for a method 0.3 does not have: -32009, as the SDK answers.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit

import httpx
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes, create_rest_routes
from a2a.types import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentProvider,
    AgentSkill,
    APIKeySecurityScheme,
    HTTPAuthSecurityScheme,
    SecurityRequirement,
    SecurityScheme,
    StringList,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

import meshgate
from a2a_broker import wire_errors
from a2a_broker.admin import AdminApi, AgentStore
from a2a_broker.delegation import SecretStore, TaskOwners, TaskStore, shared_seal
from a2a_broker.discovery import Discovery
from a2a_broker.handler import AgentDirectory, BrokerRequestHandler
from a2a_broker.identity import AuthenticatingContextBuilder
from a2a_broker.metering import BrokerMeter
from a2a_broker.policy import PolicyGate
from a2a_broker.relay import Relay
from meshgate.config import BrokerConfig
from meshgate.cookies import refuse_cookies
from meshgate.identity import Authenticator
from policies import PolicyDecisionPoint, PolicyEngine
from registry.audit import AuditLog
from registry.usage import UsageMeter


class BrokerRegistry(AgentDirectory, TaskStore, SecretStore, Protocol):
    """What the broker keeps in the registry (the registry store satisfies it): agents, who owns which task,
    and the delegation-chain seal key. Broker replicas on one registry share all three."""


@dataclass
class Broker:
    config: BrokerConfig
    handler: BrokerRequestHandler
    authenticator: Authenticator
    relay: Relay
    http: httpx.AsyncClient
    base_url: str = ""
    """Where peers reach the broker (`broker.public_url`, or set once the server is bound)."""
    owned_audit: AuditLog | None = field(default=None)
    """Closed at shutdown when the broker created it (not when shared with the gateway)."""
    discovery: Discovery | None = None
    admin: AdminApi | None = None
    """`/admin/agents`: register, list and remove agents (action `a2a.admin`), when the directory is a store."""
    grpc_port: int | None = None
    """The gRPC binding's port once bound (when `broker.grpc_port` is set; `grpc_binding.py`)."""
    """`GET {path}/agents`: agents by skill, tag, media type and organisation, filtered by policy."""
    health_sections: dict[str, Callable[[], object]] = field(default_factory=dict[str, Callable[[], object]])
    """Extra sections of `/healthz`, by name (`agents`: the launched agents' states, set by `meshgate up`)."""

    def card(self) -> AgentCard:
        base = (self.config.public_url or self.base_url).rstrip("/") + self.config.path
        return AgentCard(
            name="meshgate A2A broker",
            description="Relays A2A messages to registered agents of several organisations, each decided by "
            "policy. Set the request's `tenant` to the target agent's id.",
            version=meshgate.__version__,
            provider=AgentProvider(organization="meshgate", url="https://github.com/meshgate"),
            supported_interfaces=[
                AgentInterface(protocol_binding="JSONRPC", protocol_version="1.0", url=f"{base}/jsonrpc"),
                AgentInterface(protocol_binding="HTTP+JSON", protocol_version="1.0", url=f"{base}/rest"),
                *(
                    [AgentInterface(protocol_binding="GRPC", protocol_version="1.0", url=self._grpc_url())]
                    if self.grpc_port is not None
                    else []
                ),
            ],
            # Push-notification configs are relayed to targets that support them (-32003 for the others).
            capabilities=AgentCapabilities(streaming=True, push_notifications=True),
            security_schemes={
                "bearer": SecurityScheme(http_auth_security_scheme=HTTPAuthSecurityScheme(scheme="Bearer")),
                "apiKey": SecurityScheme(
                    api_key_security_scheme=APIKeySecurityScheme(location="header", name="X-API-Key")
                ),
            },
            security_requirements=[
                SecurityRequirement(schemes={"bearer": StringList()}),
                SecurityRequirement(schemes={"apiKey": StringList()}),
            ],
            default_input_modes=["text/plain", "application/json"],
            default_output_modes=["text/plain", "application/json"],
            skills=[
                AgentSkill(
                    id="delegate",
                    name="Delegate to a registered agent",
                    description="Any skill of a registered agent, where policy allows: address it with `tenant`.",
                    tags=["broker", "delegation"],
                )
            ],
        )

    def _grpc_url(self) -> str:
        host = urlsplit(self.config.public_url).hostname if self.config.public_url else self.config.host
        return f"{host}:{self.grpc_port}"

    async def healthz(self, _: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", **{name: section() for name, section in self.health_sections.items()}})

    def asgi(self) -> Starlette:
        async def current_card(_: AgentCard) -> AgentCard:
            return self.card()

        builder = AuthenticatingContextBuilder(self.authenticator)
        path = self.config.path.rstrip("/")
        routes = [
            *create_agent_card_routes(self.card(), card_modifier=current_card),
            *create_jsonrpc_routes(
                self.handler, rpc_url=f"{path}/jsonrpc", context_builder=builder, enable_v0_3_compat=True
            ),
            # Mounted rather than `path_prefix`: the SDK mounts its `/{tenant}` routes *before* the prefix
            # (`/{tenant}{prefix}/message:send`) while its client sends `{url}/{tenant}/message:send`.
            Mount(
                f"{path}/rest",
                routes=create_rest_routes(self.handler, context_builder=builder, enable_v0_3_compat=True),
            ),
            Route("/healthz", self.healthz, methods=["GET"]),
            *(self.discovery.routes(path) if self.discovery is not None else []),
            *(self.admin.routes() if self.admin is not None else []),
        ]

        @asynccontextmanager
        async def lifespan(_: Starlette) -> AsyncGenerator[None, None]:
            grpc_server: object | None = None
            if self.config.grpc_port is not None:
                from a2a_broker.grpc_binding import start_grpc

                grpc_server, self.grpc_port = await start_grpc(
                    self.handler, self.authenticator, self.config.host, self.config.grpc_port
                )
            try:
                yield
            finally:
                if grpc_server is not None:
                    from a2a_broker.grpc_binding import stop_grpc

                    await stop_grpc(grpc_server)
                await self.relay.aclose()
                await self.http.aclose()
                if self.owned_audit is not None:
                    self.owned_audit.close()

        return Starlette(routes=routes, lifespan=lifespan)


def build_broker(
    config: BrokerConfig,
    registry: BrokerRegistry,
    engine: PolicyEngine,
    authenticator: Authenticator,
    audit: AuditLog,
    *,
    allow_anonymous: bool,
    owns_audit: bool = False,
    meter: UsageMeter | None = None,
    metered_agents: frozenset[str] = frozenset(),
) -> Broker:
    """Wire a broker. `engine`, `audit` and `meter` are normally the gateway's, so one bundle, one log and one
    meter serve both; `metered_agents` are the model agents whose reported token usage is recorded.

    Raises:
        RegistryError: the registry cannot give the chain seal key.
    """
    wire_errors.register()
    pdp = PolicyDecisionPoint(engine, query=config.query)
    http = httpx.AsyncClient(timeout=httpx.Timeout(config.relay_timeout_s))
    refuse_cookies(http.cookies.jar)  # shared by every caller: see meshgate/cookies.py
    relay = Relay(http, timeout_s=config.relay_timeout_s, credentials=config.credentials)
    gate = PolicyGate(pdp, audit, max_message_bytes=config.max_message_bytes)
    handler = BrokerRequestHandler(
        registry,
        gate,
        relay,
        TaskOwners(registry),
        allow_anonymous=allow_anonymous,
        meter=BrokerMeter(meter, metered_agents),
        seal=shared_seal(registry),
    )
    base_url = f"http://{config.host}:{config.port}"
    broker = Broker(config, handler, authenticator, relay, http, base_url, audit if owns_audit else None)
    broker.discovery = Discovery(registry, gate, authenticator, allow_anonymous=allow_anonymous)
    if isinstance(registry, AgentStore):
        broker.admin = AdminApi(registry, gate, authenticator, allow_anonymous=allow_anonymous)
    return broker
