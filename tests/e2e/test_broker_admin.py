"""The broker's admin API over real sockets: register (by card URL or document, signed cards verified),
list and remove agents, authenticated like every broker call and decided as `a2a.admin` (role `admin`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.protobuf.json_format import MessageToJson

from a2a_broker.app import build_broker
from meshgate.config import BrokerConfig
from meshgate.identity import Authenticator, new_api_key
from policies import DEFAULT_BUNDLE, RegorusEngine
from registry.audit import AuditLog
from registry.models import AuditQuery
from registry.sqlite_store import SqliteStore
from tests.e2e.test_broker import serving
from tests.unit.a2a_broker.test_cards import card, keypair, signed_card_json

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


@dataclass
class Admin:
    url: str
    store: SqliteStore
    audit: AuditLog

    def key(self, *roles: str, subject: str = "ops") -> dict[str, str]:
        record, token = new_api_key("meshgate", subject, roles)
        self.store.add_api_key(record)
        return {"Authorization": f"Bearer {token}"}

    async def call(
        self, method: str, path: str, headers: dict[str, str], body: dict[str, Any] | None = None
    ) -> httpx.Response:
        async with httpx.AsyncClient(timeout=10) as http:
            return await http.request(method, f"{self.url}{path}", json=body, headers=headers)


@pytest.fixture
async def admin(tmp_path: Path) -> AsyncGenerator[Admin]:
    store = SqliteStore(tmp_path / "registry.db")
    audit = AuditLog(store)
    config = BrokerConfig(enabled=True, port=0)
    broker = build_broker(
        config, store, RegorusEngine(DEFAULT_BUNDLE), Authenticator([], store, False), audit, allow_anonymous=False
    )
    try:
        async with serving(broker.asgi()) as front:
            broker.base_url = f"http://127.0.0.1:{front.port}"
            yield Admin(broker.base_url, store, audit)
    finally:
        audit.close()
        store.close()


def error(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


async def test_an_admin_registers_lists_and_removes_an_agent_by_card_document(admin: Admin) -> None:
    ops = admin.key("admin")
    document = MessageToJson(card())
    added = await admin.call("POST", "/admin/agents", ops, {"id": "ledger", "card": document})
    assert added.status_code == 201, added.text
    assert (added.json()["agent_id"], added.json()["organization"]) == ("ledger", "finance")
    assert admin.store.get_agent("ledger").card_json == document  # stored verbatim
    listed = await admin.call("GET", "/admin/agents", ops)
    assert [a["agent_id"] for a in listed.json()["agents"]] == ["ledger"]
    again = await admin.call("POST", "/admin/agents", ops, {"id": "ledger", "card": document})
    assert error(again) == (409, "already_exists")
    replaced = await admin.call("POST", "/admin/agents", ops, {"id": "ledger", "card": document, "replace": True})
    assert replaced.status_code == 201
    assert (await admin.call("DELETE", "/admin/agents/ledger", ops)).status_code == 204
    assert error(await admin.call("DELETE", "/admin/agents/ledger", ops)) == (404, "not_found")
    assert admin.audit.flush()
    records = admin.audit.query(AuditQuery(action="a2a.admin"))
    assert {(r.resource, r.outcome) for r in records} >= {("ledger", "ok"), ("ledger", "already_exists")}


async def test_an_agent_is_registered_by_card_url_as_fetched(admin: Admin) -> None:
    ops = admin.key("admin")
    # the broker's own card, at its well-known path: a real card served over a socket
    added = await admin.call("POST", "/admin/agents", ops, {"id": "mirror", "card_url": admin.url})
    assert added.status_code == 201, added.text
    assert added.json()["url"] == f"{admin.url}/.well-known/agent-card.json"
    async with httpx.AsyncClient() as http:
        served = (await http.get(f"{admin.url}/.well-known/agent-card.json")).text
    assert admin.store.get_agent("mirror").card_json == served
    unreachable = await admin.call("POST", "/admin/agents", ops, {"id": "gone", "card_url": "http://127.0.0.1:9"})
    assert error(unreachable) == (422, "card_invalid")


async def test_a_signed_card_is_verified_against_the_given_keys(admin: Admin) -> None:
    ops = admin.key("admin")
    private, jwk = keypair("finance-1")
    signed = signed_card_json(private, "finance-1")
    jwks = {"keys": [jwk]}
    added = await admin.call("POST", "/admin/agents", ops, {"id": "ledger", "card": signed, "jwks": jwks})
    assert added.status_code == 201 and added.json()["signed"] is True
    assert admin.store.get_agent("ledger").card_json == signed  # the exact bytes that were signed
    tampered = json.loads(signed)
    tampered["description"] = "now with lower fees"
    body = {"id": "forged", "card": json.dumps(tampered), "jwks": jwks}
    assert error(await admin.call("POST", "/admin/agents", ops, body)) == (422, "card_signature_invalid")
    unsigned = {"id": "stripped", "card": MessageToJson(card()), "jwks": jwks}
    assert error(await admin.call("POST", "/admin/agents", ops, unsigned)) == (422, "card_signature_invalid")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"id": "x", "card": "{not json"}, (422, "card_invalid")),
        ({"id": "x", "card": {"name": "no interfaces"}}, (422, "card_invalid")),
        ({"id": "Bad Id", "card": MessageToJson(card())}, (400, "config_invalid")),
        ({"id": "x"}, (400, "invalid_arguments")),
    ],
)
async def test_bad_registrations_get_precise_errors_and_store_nothing(
    admin: Admin, body: dict[str, Any], expected: tuple[int, str]
) -> None:
    response = await admin.call("POST", "/admin/agents", admin.key("admin"), body)
    assert error(response) == expected
    assert admin.store.list_agents() == []


async def test_only_an_admin_may_use_the_admin_api_and_each_refusal_is_audited(admin: Admin) -> None:
    reader = admin.key("reader", subject="eve")
    document = MessageToJson(card())
    denied = await admin.call("POST", "/admin/agents", reader, {"id": "ledger", "card": document})
    assert error(denied) == (403, "policy_denied")
    assert denied.json()["error"]["reasons"] == ["eve may not administer the broker's agents: role admin required"]
    assert error(await admin.call("GET", "/admin/agents", reader)) == (403, "policy_denied")
    assert error(await admin.call("DELETE", "/admin/agents/ledger", {})) == (401, "unauthenticated")
    assert admin.store.list_agents() == []
    assert admin.audit.flush()
    denials = admin.audit.query(AuditQuery(action="a2a.admin", allow=False))
    assert {(r.subject, r.outcome) for r in denials} == {("eve", "denied")}
