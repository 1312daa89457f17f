"""Agent discovery: which registered agents a principal may reach, by skill, tag, media type and organisation.

A2A prescribes no discovery API (spec §8.2: well-known URI, "curated registries" in prose only, direct
configuration), so the broker offers a plain, documented HTTP endpoint beside its bindings rather than
an A2A method: a JSON-RPC method or a REST route inside the bindings would be a private extension that
no A2A client knows, while a GET with query parameters is what registry clients already speak.

    GET {path}/agents?skill=&tag=&org=&input_mode=&output_mode=   (each optional; all given must match)
      -> 200 {"agents": [{"id", "organization", "signed", "card": <the stored card, verbatim>}, ...]}
    GET {path}/agents/{agent_id}  -> 200 the stored card itself, byte-for-byte (404 unknown or unseen)

Cards are never rewritten: each is spliced into the answer as the exact text stored at registration,
so a signed card (JWS over its JCS form) verifies as served. Authentication is the broker's (the same
`Authenticator`); visibility is one policy decision per call, action `a2a.agents/discover`, on the
candidates (`resource.agents`: id -> organisation and skills), whose `visible` obligation names the
agents shown; an agent the principal may not see and an unknown one get the same 404.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from a2a.types import AgentCard
from a2a.utils.errors import A2A_ERROR_MAPPING
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from a2a_broker.cards import card_input_modes, card_output_modes, card_skill_ids, card_tags
from a2a_broker.policy import CallInfo, PolicyGate
from a2a_broker.relay import stored_card
from a2a_broker.wire_errors import to_a2a_error
from meshgate.errors import CardInvalid, MeshError, Unauthenticated
from meshgate.identity import Authenticator
from meshgate.principal import Principal
from policies.input import ResourceDoc
from registry.models import AgentRecord

ACTION = "a2a.agents/discover"
FILTERS = ("skill", "tag", "org", "input_mode", "output_mode")


class AgentLister(Protocol):
    """What discovery reads (the registry store satisfies it)."""

    def list_agents(self) -> list[AgentRecord]: ...


@dataclass(frozen=True, slots=True)
class Listed:
    record: AgentRecord
    card: AgentCard


def matches(listed: Listed, query: Mapping[str, str]) -> bool:
    """True when the agent satisfies every filter given in `query` (see `FILTERS`)."""
    card, skill = listed.card, query.get("skill", "")
    if skill and skill not in card_skill_ids(card):
        return False
    if query.get("tag") and query["tag"] not in card_tags(card):
        return False
    if query.get("org") and query["org"] != listed.record.organization:
        return False
    skills: list[str | None] = [skill] if skill else [None, *card_skill_ids(card)]
    if query.get("input_mode") and not any(query["input_mode"] in card_input_modes(card, s) for s in skills):
        return False
    return not query.get("output_mode") or any(query["output_mode"] in card_output_modes(card, s) for s in skills)


class Discovery:
    def __init__(
        self, directory: AgentLister, gate: PolicyGate, authenticator: Authenticator, *, allow_anonymous: bool
    ) -> None:
        self._directory = directory
        self._gate = gate
        self._authenticator = authenticator
        self._allow_anonymous = allow_anonymous

    def routes(self, path: str) -> list[Route]:
        return [
            Route(f"{path}/agents", self.list_agents, methods=["GET"]),
            Route(f"{path}/agents/{{agent_id}}", self.get_card, methods=["GET"]),
        ]

    async def list_agents(self, request: Request) -> Response:
        query = {name: request.query_params.get(name, "") for name in FILTERS}
        try:
            shown = self._visible(request, [e for e in self._candidates() if matches(e, query)])
        except MeshError as exc:
            return _error(exc)
        entries = [
            # the card is spliced in as stored: re-serialising it would break a signed card's bytes
            f'{{"id": {json.dumps(e.record.agent_id)}, "organization": {json.dumps(e.record.organization)}, '
            f'"signed": {json.dumps(e.record.signed)}, "card": {e.record.card_json}}}'
            for e in shown
        ]
        return Response('{"agents": [' + ", ".join(entries) + "]}", media_type="application/json")

    async def get_card(self, request: Request) -> Response:
        agent_id = request.path_params["agent_id"]
        try:
            shown = self._visible(request, [e for e in self._candidates() if e.record.agent_id == agent_id])
        except MeshError as exc:
            return _error(exc)
        if not shown:
            return JSONResponse(
                {"error": {"code": 404, "status": "NOT_FOUND", "message": f"no agent {agent_id!r}"}}, status_code=404
            )
        return Response(shown[0].record.card_json, media_type="application/json")

    def _candidates(self) -> list[Listed]:
        listed: list[Listed] = []
        for record in self._directory.list_agents():
            try:
                listed.append(Listed(record, stored_card(record.card_json)))
            except CardInvalid:  # a card that no longer parses cannot be matched; it is left out
                continue
        return listed

    def _visible(self, request: Request, candidates: list[Listed]) -> list[Listed]:
        principal = self._principal(request)
        resource: ResourceDoc = {
            "kind": "catalog",
            "id": "agents",
            "items": [e.record.agent_id for e in candidates],
            "agents": {
                e.record.agent_id: {"organization": e.record.organization, "skills": card_skill_ids(e.card)}
                for e in candidates
            },
        }
        call = CallInfo(client=request.headers.get("user-agent", ""), protocol_version="1.0")
        check = self._gate.check(principal, ACTION, resource, message=None, delegation=[], call=call)
        check.record("ok")
        visible = set(check.decision.visible)
        return [e for e in candidates if e.record.agent_id in visible]

    def _principal(self, request: Request) -> Principal:
        principal = self._authenticator.authenticate(
            request.headers.get("authorization"), request.headers.get("x-api-key")
        )
        if principal.is_anonymous and not self._allow_anonymous:
            raise Unauthenticated("no authenticated principal on this call")
        return principal


def _error(exc: MeshError) -> JSONResponse:
    mapping = A2A_ERROR_MAPPING[type(to_a2a_error(exc))]
    body = {"error": {"code": mapping.http_code, "status": mapping.grpc_status, "message": exc.detail}}
    return JSONResponse(body, status_code=mapping.http_code)
