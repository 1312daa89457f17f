"""Serve an example A2A agent: JSON-RPC and HTTP+JSON on Starlette/uvicorn, gRPC beside it, one request handler.

Like `examples/upstreams/http_listener.py`, the HTTP socket is bound and listening (and gRPC started)
before `<name> listening on <base URL>` is printed as stdout's first line, so a parent may connect
as soon as it reads it. The card is served at the base URL's `/.well-known/agent-card.json`. An agent
whose card declares `capabilities.pushNotifications` also stores push configs and POSTs task updates to them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

import grpc.aio
import httpx
import uvicorn
from a2a.helpers import get_data_parts
from a2a.server.agent_execution import AgentExecutor
from a2a.server.request_handlers import DefaultRequestHandler, GrpcHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes, create_rest_routes
from a2a.server.tasks import BasePushNotificationSender, InMemoryPushNotificationConfigStore, InMemoryTaskStore
from a2a.types import AgentCard, AgentInterface, Part, a2a_pb2_grpc
from starlette.applications import Starlette

from examples.upstreams.http_listener import bind_listener

JSONRPC_PATH = "/a2a/jsonrpc"
REST_PATH = "/a2a/rest"


def interfaces(base_url: str, grpc_target: str | None) -> list[AgentInterface]:
    """The card's interfaces in preference order: JSON-RPC first, then HTTP+JSON, then gRPC."""
    found = [
        AgentInterface(protocol_binding="JSONRPC", protocol_version="1.0", url=base_url + JSONRPC_PATH),
        AgentInterface(protocol_binding="HTTP+JSON", protocol_version="1.0", url=base_url + REST_PATH),
    ]
    if grpc_target:
        found.append(AgentInterface(protocol_binding="GRPC", protocol_version="1.0", url=grpc_target))
    return found


def data_objects(parts: Sequence[Part]) -> list[dict[str, Any]]:
    """The JSON objects among a message's data parts (numbers come back as floats: protobuf `Value`)."""
    found = [cast(dict[object, Any], d) for d in get_data_parts(parts) if isinstance(d, dict)]
    return [{str(k): v for k, v in d.items()} for d in found]


def build_app(card: AgentCard, handler: DefaultRequestHandler) -> Starlette:
    # 0.3 compat serves headerless/0.3 requests on the same URLs; the card lists only 1.0 interfaces,
    # so the SDK does not add the legacy top-level fields that break strict 1.0 card validation.
    routes = [
        *create_agent_card_routes(card, cache_control="public, max-age=60"),
        *create_jsonrpc_routes(handler, rpc_url=JSONRPC_PATH, enable_v0_3_compat=True),
        *create_rest_routes(handler, path_prefix=REST_PATH, enable_v0_3_compat=True),
    ]
    return Starlette(routes=routes)


async def serve_agent(
    name: str,
    executor: AgentExecutor,
    build_card: Callable[[list[AgentInterface]], AgentCard],
    *,
    host: str,
    port: int,
    with_grpc: bool = True,
) -> None:
    """Bind, start gRPC, announce the base URL, then serve until cancelled."""
    sock = bind_listener(host, port)
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    base_url = f"http://{shown}:{bound_port}"
    grpc_server: grpc.aio.Server | None = None
    grpc_target: str | None = None
    if with_grpc:
        grpc_server = grpc.aio.server()
        grpc_port = grpc_server.add_insecure_port(f"{shown}:0")
        grpc_target = f"{shown}:{grpc_port}"
    card = build_card(interfaces(base_url, grpc_target))
    # An agent whose card declares push notifications gets the SDK's config store and webhook sender.
    pushes = httpx.AsyncClient(timeout=10) if card.capabilities.push_notifications else None
    push_store = InMemoryPushNotificationConfigStore() if pushes is not None else None
    handler = DefaultRequestHandler(
        agent_executor=executor,
        task_store=InMemoryTaskStore(),
        agent_card=card,
        push_config_store=push_store,
        push_sender=BasePushNotificationSender(pushes, push_store) if pushes and push_store else None,
        validate_input_modes=True,  # spec §3.1.1: a part of a media type the card does not accept is -32005
    )
    if grpc_server is not None:
        a2a_pb2_grpc.add_A2AServiceServicer_to_server(GrpcHandler(handler), grpc_server)  # pyright: ignore[reportUnknownMemberType]
        await grpc_server.start()
    print(f"{name} listening on {base_url}", flush=True)
    server = uvicorn.Server(uvicorn.Config(build_app(card, handler), log_level="warning", lifespan="on"))
    try:
        await server.serve(sockets=[sock])
    finally:
        if grpc_server is not None:
            await grpc_server.stop(grace=1)
        await handler.aclose()
        if pushes is not None:
            await pushes.aclose()
