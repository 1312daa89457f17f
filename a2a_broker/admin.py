"""The broker's admin API: register, list and remove agents over HTTP, as `meshgate agents add|list|remove` do.

    POST   /admin/agents        {"id", "card_url" | "card", "organization"?, "jwks"?, "replace"?}
                                 -> 201 the agent's summary (`meshgate agents list --json`'s shape)
    GET    /admin/agents        -> 200 {"agents": [summary, ...]}
    DELETE /admin/agents/{id}   -> 204

`card` is the card document (a JSON object, or its text to keep a signed card's exact bytes); `jwks` the
JWKS document of keys trusted for the agent's organisation (then the card must carry a verifying
signature). Registration is `cards.register_card`, the CLI's own path. Authentication is the broker's
`Authenticator`; every call is one policy decision, action `a2a.admin` (the shipped bundle: role
`admin` only), audited with its outcome. Errors are `{"error": {"code", "message"}}` with the HTTP
status of `STATUS` (400 invalid_arguments / config_invalid for a bad body or agent id, 401
unauthenticated, 403 policy_denied, 404 not_found, 409 already_exists, 422 card_invalid /
card_signature_invalid).
"""

from __future__ import annotations

import json
from typing import Any, Protocol, cast, runtime_checkable

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from a2a_broker.cards import card_url, fetch_card, jwks_from_document, register_card
from a2a_broker.policy import CallInfo, Check, PolicyGate
from meshgate.errors import (
    AlreadyExists,
    CardInvalid,
    CardSignatureInvalid,
    ConfigError,
    InvalidArguments,
    MeshError,
    NotFound,
    PolicyDenied,
    PolicyUnavailable,
    Unauthenticated,
)
from meshgate.identity import Authenticator
from policies.input import ResourceDoc
from registry.clock import utc_now
from registry.models import AgentRecord

ACTION = "a2a.admin"


@runtime_checkable
class AgentStore(Protocol):
    """What the admin API reads and writes (the registry store satisfies it)."""

    def add_agent(self, record: AgentRecord, *, replace: bool = False) -> None: ...

    def get_agent(self, agent_id: str) -> AgentRecord: ...

    def list_agents(self) -> list[AgentRecord]: ...

    def remove_agent(self, agent_id: str) -> None: ...


STATUS: dict[type[MeshError], int] = {
    InvalidArguments: 400,
    ConfigError: 400,
    Unauthenticated: 401,
    PolicyDenied: 403,
    PolicyUnavailable: 503,
    NotFound: 404,
    AlreadyExists: 409,
    CardInvalid: 422,
    CardSignatureInvalid: 422,
}
"""HTTP status of each error the admin API answers; any other `MeshError` is 500."""


class AdminApi:
    def __init__(
        self,
        store: AgentStore,
        gate: PolicyGate,
        authenticator: Authenticator,
        *,
        allow_anonymous: bool,
        fetch_timeout_s: float = 10.0,
    ) -> None:
        self._store = store
        self._gate = gate
        self._authenticator = authenticator
        self._allow_anonymous = allow_anonymous
        self._fetch_timeout_s = fetch_timeout_s

    def routes(self) -> list[Route]:
        return [
            Route("/admin/agents", self.add, methods=["POST"]),
            Route("/admin/agents", self.list, methods=["GET"]),
            Route("/admin/agents/{agent_id}", self.remove, methods=["DELETE"]),
        ]

    async def add(self, request: Request) -> Response:
        try:
            body = await _registration(request)
            agent_id = str(body.get("id", ""))
            check = self._check(request, agent_id or "?", "add")
        except MeshError as exc:
            return _error(exc)
        try:
            record = await self._register(agent_id, body)
        except MeshError as exc:
            check.record(exc.code)
            return _error(exc)
        check.record("ok")
        return JSONResponse(_summary(record.agent_id, self._store), status_code=201)

    async def list(self, request: Request) -> Response:
        try:
            check = self._check(request, "agents", "list")
        except MeshError as exc:
            return _error(exc)
        from meshgate.commands.agents import agent_summary

        agents = [agent_summary(a) for a in self._store.list_agents()]
        check.record("ok")
        return JSONResponse({"agents": agents})

    async def remove(self, request: Request) -> Response:
        agent_id = request.path_params["agent_id"]
        try:
            check = self._check(request, agent_id, "remove")
        except MeshError as exc:
            return _error(exc)
        try:
            self._store.remove_agent(agent_id)
        except MeshError as exc:
            check.record(exc.code)
            return _error(exc)
        check.record("ok")
        return Response(status_code=204)

    async def _register(self, agent_id: str, body: dict[str, Any]) -> AgentRecord:
        url, card, jwks = body.get("card_url"), body.get("card"), body.get("jwks")
        if bool(url) == (card is not None):
            raise InvalidArguments("give exactly one of `card_url` or `card`")
        if url:
            url = card_url(str(url))
            text = await anyio.to_thread.run_sync(lambda: fetch_card(url, timeout_s=self._fetch_timeout_s))
        else:
            # a string is the card's exact text (a signed card keeps its bytes); an object is serialised once
            text = card if isinstance(card, str) else json.dumps(card)
        return register_card(
            self._store,
            agent_id,
            text,
            card_url=url or "",
            organization=str(body.get("organization", "")),
            jwks=jwks_from_document(jwks) if jwks is not None else None,
            replace=body.get("replace") is True,
            registered_at=utc_now(),
        )

    def _check(self, request: Request, agent_id: str, operation: str) -> Check:
        principal = self._authenticator.authenticate(
            request.headers.get("authorization"), request.headers.get("x-api-key")
        )
        if principal.is_anonymous and not self._allow_anonymous:
            raise Unauthenticated("no authenticated principal on this call")
        call = CallInfo(client=request.headers.get("user-agent", ""), protocol_version="")
        resource: ResourceDoc = {"kind": "agent", "id": agent_id, "operation": operation}
        return self._gate.check(principal, ACTION, resource, message=None, delegation=[], call=call)


async def _registration(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InvalidArguments("the request body is not JSON") from None
    if not isinstance(body, dict):
        raise InvalidArguments("the request body must be a JSON object")
    return cast(dict[str, Any], body)


def _summary(agent_id: str, store: AgentStore) -> dict[str, object]:
    from meshgate.commands.agents import agent_summary

    return agent_summary(store.get_agent(agent_id))


def _error(exc: MeshError) -> JSONResponse:
    status = STATUS.get(type(exc), 500)
    body: dict[str, Any] = {"code": exc.code, "message": exc.detail}
    for key in ("reasons", "decision_id"):
        if key in exc.data:
            body[key] = exc.data[key]
    return JSONResponse({"error": body}, status_code=status)
