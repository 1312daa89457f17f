"""The broker's gRPC binding: the a2a-sdk's `GrpcHandler` over the same request handler as JSON-RPC and REST.

One handler behind all three bindings, so the same authentication (the `Authenticator`, credentials
from call metadata `authorization` / `x-api-key`), policy, audit, relay and task ownership apply. Served
when `broker.grpc_port` is set (0: a free port, as for `broker.port`); the broker's card then lists a
GRPC interface after JSON-RPC and HTTP+JSON. Insecure (plaintext) on the configured host: A2A requires
TLS for gRPC in production, so bind it to loopback or put a TLS-terminating proxy in front.
"""

from __future__ import annotations

import grpc.aio
from a2a.auth.user import User
from a2a.server.context import ServerCallContext
from a2a.server.request_handlers import DefaultGrpcServerCallContextBuilder, GrpcHandler, RequestHandler
from a2a.types import a2a_pb2_grpc

from a2a_broker.identity import PrincipalUser
from a2a_broker.wire_errors import to_a2a_error
from meshgate.errors import Unauthenticated
from meshgate.identity import Authenticator

_ServicerContext = grpc.aio.ServicerContext  # pyright: ignore[reportMissingTypeArgument, reportUnknownMemberType]


class AuthenticatingGrpcContextBuilder(DefaultGrpcServerCallContextBuilder):
    def __init__(self, authenticator: Authenticator) -> None:
        self._authenticator = authenticator

    def build(self, context: _ServicerContext) -> ServerCallContext:  # pyright: ignore[reportUnknownParameterType]
        call = super().build(context)  # pyright: ignore[reportUnknownArgumentType, reportUnknownMemberType]
        call.state["headers"] = _metadata(context)  # read by the handler: A2A-Version, user agent
        return call

    def build_user(self, context: _ServicerContext) -> User:  # pyright: ignore[reportUnknownParameterType]
        """Raises `UnauthenticatedError` (an A2A error, gRPC UNAUTHENTICATED) for bad or missing credentials."""
        metadata = _metadata(context)
        try:
            principal = self._authenticator.authenticate(metadata.get("authorization"), metadata.get("x-api-key"))
        except Unauthenticated as exc:
            raise to_a2a_error(exc) from exc
        return PrincipalUser(principal)


async def start_grpc(handler: RequestHandler, authenticator: Authenticator, host: str, port: int) -> tuple[object, int]:
    """Start a gRPC server for `handler`; returns it (stop it with `stop_grpc`) and the port it bound."""
    server = grpc.aio.server()
    servicer = GrpcHandler(handler, context_builder=AuthenticatingGrpcContextBuilder(authenticator))
    a2a_pb2_grpc.add_A2AServiceServicer_to_server(servicer, server)  # pyright: ignore[reportUnknownMemberType]
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    return server, bound


async def stop_grpc(server: object, grace_s: float = 1.0) -> None:
    assert isinstance(server, grpc.aio.Server)
    await server.stop(grace_s)


def _metadata(context: _ServicerContext) -> dict[str, str]:  # pyright: ignore[reportUnknownParameterType]
    found: dict[str, str] = {}
    for key, value in context.invocation_metadata() or ():  # pyright: ignore[reportUnknownVariableType, reportUnknownMemberType]
        text = value if isinstance(value, str) else bytes(value).decode("utf-8", "replace")  # pyright: ignore[reportUnknownArgumentType]
        found[str(key).lower()] = text  # pyright: ignore[reportUnknownArgumentType]
    return found
