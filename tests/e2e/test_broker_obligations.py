"""Message obligations over real sockets: an a2a-sdk client → the broker → an a2a-sdk target agent.

The shipped bundle gives a cross-organisation message `deny_file_parts`, `max_message_bytes` 65536 and,
from organisation travel, `redact_parts` for `traveller.passport_number`/`traveller.date_of_birth`; the
broker's own `max_message_bytes` (96 KiB here) refuses larger messages before any decision.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from a2a.client import A2ACardResolver, A2AClientError, ClientConfig, ClientFactory
from a2a.helpers import new_text_message
from a2a.server.agent_execution import RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore
from a2a.types import Part, Role, SendMessageRequest, TaskState
from google.protobuf.json_format import MessageToDict, MessageToJson, ParseDict
from google.protobuf.struct_pb2 import Value
from starlette.applications import Starlette

from a2a_broker.app import build_broker
from a2a_broker.wire_errors import MessageTooLargeError, PolicyDeniedError
from meshgate.config import BrokerConfig
from meshgate.identity import Authenticator, new_api_key
from policies import DEFAULT_BUNDLE, RegorusEngine
from registry.audit import AuditLog
from registry.models import AgentRecord, AuditQuery, AuditRecord
from registry.sqlite_store import SqliteStore
from tests.e2e.test_broker import Ledger, LedgerExecutor, RecordingContextBuilder, ledger_card, serving

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

BROKER_LIMIT = 96 * 1024


class PartsRecordingExecutor(LedgerExecutor):
    """The test target's executor, also keeping each message's parts as the target received them."""

    def __init__(self, ledger: Ledger, received: list[list[dict[str, Any]]]) -> None:
        super().__init__(ledger)
        self.received = received

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.message is not None
        self.received.append(MessageToDict(context.message).get("parts", []))
        await super().execute(context, event_queue)


@dataclass
class Mesh:
    store: SqliteStore
    audit: AuditLog
    url: str
    received: list[list[dict[str, Any]]] = field(default_factory=list[list[dict[str, Any]]])

    async def send(self, tenant: str, request: SendMessageRequest) -> TaskState:
        record, token = new_api_key(tenant, f"{tenant}-bot", ())
        self.store.add_api_key(record)
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=10) as http:
            card = await A2ACardResolver(http, self.url).get_agent_card()
            client = ClientFactory(ClientConfig(streaming=False, httpx_client=http)).create(card)
            responses = [r async for r in client.send_message(request)]
        return responses[0].task.status.state

    def only_record(self) -> AuditRecord:
        assert self.audit.flush()
        [record] = self.audit.query(AuditQuery(action="a2a.message/send"))
        return record


@pytest.fixture
async def mesh(tmp_path: Path) -> AsyncGenerator[Mesh]:
    store = SqliteStore(tmp_path / "registry.db")
    ledger = Ledger()
    received: list[list[dict[str, Any]]] = []
    handler = DefaultRequestHandler(
        agent_executor=PartsRecordingExecutor(ledger, received),
        task_store=InMemoryTaskStore(),
        agent_card=ledger_card("http://x"),
    )
    target_app = Starlette(
        routes=create_jsonrpc_routes(handler, "/a2a", context_builder=RecordingContextBuilder(ledger))
    )
    audit = AuditLog(store)
    broker = build_broker(
        BrokerConfig(enabled=True, port=0, relay_timeout_s=5, max_message_bytes=BROKER_LIMIT),
        store,
        RegorusEngine(DEFAULT_BUNDLE),
        Authenticator([], store, False),
        audit,
        allow_anonymous=False,
    )
    try:
        async with serving(target_app) as target, serving(broker.asgi()) as front:
            card = ledger_card(f"http://127.0.0.1:{target.port}/a2a")
            store.add_agent(AgentRecord("ledger", "finance", MessageToJson(card), "", False, "2026-01-01T00:00:00Z"))
            broker.base_url = f"http://127.0.0.1:{front.port}"
            yield Mesh(store, audit, broker.base_url, received)
            ledger.release.set()
    finally:
        audit.close()
        store.close()


def request_with(*extra: Part, text: str = "100 EUR in USD") -> SendMessageRequest:
    message = new_text_message(text, role=Role.ROLE_USER)
    message.parts.extend(extra)
    message.metadata.update({"io.meshgate/skill": "currency-quote"})
    return SendMessageRequest(tenant="ledger", message=message)


def data_part(document: dict[str, Any]) -> Part:
    return Part(data=ParseDict(document, Value()))


async def test_a_redacted_data_part_reaches_the_target_redacted_and_is_audited_redacted(mesh: Mesh) -> None:
    traveller = {"name": "Ann", "passport_number": "X1234567", "date_of_birth": "1990-01-01"}

    state = await mesh.send("travel", request_with(data_part({"traveller": traveller, "amount": 100})))

    assert TaskState.Name(state) == "TASK_STATE_COMPLETED"
    redacted = {"traveller": {"name": "Ann", "passport_number": "[REDACTED]", "date_of_birth": "[REDACTED]"}}
    [parts] = mesh.received
    assert parts[1]["data"] == {**redacted, "amount": 100}
    record = mesh.only_record()
    assert (record.allow, record.outcome) == (True, "ok")
    assert record.input is not None
    assert record.input["message"]["parts"][1]["data"] == {**redacted, "amount": 100}


async def test_a_file_part_across_organisations_is_denied_and_audited(mesh: Mesh) -> None:
    passport = Part(url="https://files.travel.example/passport.pdf", filename="passport.pdf")

    with pytest.raises(A2AClientError) as caught:
        await mesh.send("travel", request_with(passport))

    assert str(PolicyDeniedError.jsonrpc_code) in str(caught.value)
    assert mesh.received == []  # never reached the target
    record = mesh.only_record()
    assert (record.allow, record.outcome) == (True, "policy_denied")


async def test_a_file_part_within_an_organisation_is_relayed(mesh: Mesh) -> None:
    report = Part(url="https://files.finance.example/report.pdf", filename="report.pdf")

    state = await mesh.send("finance", request_with(report))

    assert TaskState.Name(state) == "TASK_STATE_COMPLETED"
    assert mesh.received[0][1]["url"] == "https://files.finance.example/report.pdf"


async def test_a_message_over_the_policys_size_cap_is_refused_and_audited(mesh: Mesh) -> None:
    with pytest.raises(A2AClientError) as caught:
        await mesh.send("travel", request_with(text="x" * 70_000))

    assert str(MessageTooLargeError.jsonrpc_code) in str(caught.value)
    assert mesh.received == []
    record = mesh.only_record()
    assert (record.allow, record.outcome) == (True, "payload_too_large")


async def test_a_message_over_the_brokers_limit_is_refused_before_policy_and_audited(mesh: Mesh) -> None:
    with pytest.raises(A2AClientError) as caught:
        await mesh.send("finance", request_with(text="x" * (BROKER_LIMIT + 1)))

    assert str(MessageTooLargeError.jsonrpc_code) in str(caught.value)
    assert mesh.received == []
    record = mesh.only_record()
    assert (record.allow, record.outcome, record.engine) == (False, "payload_too_large", "broker-config")
    assert record.input is not None and record.input["message"]["size_bytes"] > BROKER_LIMIT
