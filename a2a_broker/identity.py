"""Who is calling the broker: the gateway's `Authenticator` behind the a2a-sdk's call-context builder.

The SDK enforces no authentication; its JSON-RPC and REST dispatchers build a `ServerCallContext` per
request inside their error handling, so an `UnauthenticatedError` raised here leaves as a proper A2A
error (JSON-RPC -32036, HTTP 401) on both bindings. The caller's credentials stop here.
"""

from __future__ import annotations

from a2a.auth.user import User
from a2a.server.context import ServerCallContext
from a2a.server.routes import DefaultServerCallContextBuilder
from starlette.requests import Request

from a2a_broker.delegation import owner_key
from a2a_broker.wire_errors import to_a2a_error
from meshgate.errors import Unauthenticated
from meshgate.identity import Authenticator
from meshgate.principal import Principal


class PrincipalUser(User):
    """The SDK's user for an authenticated principal; `user_name` is its task-owner key."""

    def __init__(self, principal: Principal) -> None:
        self.principal = principal

    @property
    def is_authenticated(self) -> bool:
        return not self.principal.is_anonymous

    @property
    def user_name(self) -> str:
        return owner_key(self.principal)


class AuthenticatingContextBuilder(DefaultServerCallContextBuilder):
    def __init__(self, authenticator: Authenticator) -> None:
        self._authenticator = authenticator

    def build(self, request: Request) -> ServerCallContext:
        context = super().build(request)
        context.state["request_size"] = int(request.headers.get("content-length", "0") or 0)
        return context

    def build_user(self, request: Request) -> User:
        """Raises `UnauthenticatedError` (an A2A error) for bad or missing credentials."""
        try:
            principal = self._authenticator.authenticate(
                request.headers.get("authorization"), request.headers.get("x-api-key")
            )
        except Unauthenticated as exc:
            raise to_a2a_error(exc) from exc
        return PrincipalUser(principal)
