"""The A2A broker over real sockets: a2a-sdk clients → broker → a2a-sdk target agents, all on 127.0.0.1.

The target ("ledger", organisation finance) runs in the test's event loop so the test can hold its
stream open between events; the shipped bundle grants travel finance's `currency-quote` only.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import uvicorn
from a2a.client import A2ACardResolver, A2AClientError, Client, ClientConfig, ClientFactory
from a2a.helpers import get_artifact_text, new_task_from_user_message, new_text_message
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.context import ServerCallContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import DefaultServerCallContextBuilder, create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentProvider,
    AgentSkill,
    GetTaskRequest,
    Part,
    Role,
    SendMessageRequest,
    TaskState,
)
from a2a.utils.errors import TaskNotFoundError
from google.protobuf.json_format import MessageToDict, MessageToJson
from starlette.applications import Starlette
from starlette.requests import Request

from a2a_broker.app import Broker, build_broker
from a2a_broker.wire_errors import AgentNotFoundError, PolicyDeniedError, TargetTimeoutError, TargetUnavailableError
from meshgate.config import BrokerConfig
from meshgate.identity import Authenticator, new_api_key
from meshgate.serving import ListeningServer
from policies import DEFAULT_BUNDLE, RegorusEngine
from registry.audit import AuditLog
from registry.models import AgentRecord, AuditQuery
from registry.sqlite_store import SqliteStore

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

BROKER_SECRET = "Bearer broker-credential-for-ledger"


@dataclass
class Ledger:
    """What the target agent saw, and a gate the streaming test opens between chunks."""

    headers: list[dict[str, str]] = field(default_factory=list[dict[str, str]])
    metadata: list[dict[str, Any]] = field(default_factory=list[dict[str, Any]])
    chunk_sent: anyio.Event = field(default_factory=anyio.Event)
    release: anyio.Event = field(default_factory=anyio.Event)


class LedgerExecutor(AgentExecutor):
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.message is not None
        self.ledger.metadata.append(MessageToDict(context.message.metadata))
        task = context.current_task or new_task_from_user_message(context.message)
        await event_queue.enqueue_event(task)
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        await updater.start_work()
        text = context.get_user_input()
        if text == "hang":
            await anyio.sleep_forever()
        if text == "stream":
            for i in range(3):
                await updater.add_artifact([Part(text=f"chunk{i}")], artifact_id="a", append=i > 0, last_chunk=i == 2)
                if i == 0:  # hold the rest until the caller has seen the first chunk through the broker
                    self.ledger.chunk_sent.set()
                    await self.ledger.release.wait()
        else:
            await updater.add_artifact([Part(text="1 EUR = 1.08 USD")], artifact_id="quote")
        await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        await TaskUpdater(event_queue, context.task_id or "", context.context_id or "").cancel()


class RecordingContextBuilder(DefaultServerCallContextBuilder):
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def build(self, request: Request) -> ServerCallContext:
        self.ledger.headers.append(dict(request.headers))
        return super().build(request)


def ledger_card(url: str) -> AgentCard:
    return AgentCard(
        name="Ledger",
        description="Finance: quotes and transfers",
        version="1.0.0",
        provider=AgentProvider(organization="finance", url="https://finance.example"),
        supported_interfaces=[AgentInterface(protocol_binding="JSONRPC", protocol_version="1.0", url=url)],
        capabilities=AgentCapabilities(streaming=True),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=[
            AgentSkill(id="currency-quote", name="Quote", description="FX quotes", tags=["fx"]),
            AgentSkill(id="transfer-funds", name="Transfer", description="Move money", tags=["payments"]),
        ],
    )


@asynccontextmanager
async def serving(app: Starlette) -> AsyncGenerator[ListeningServer, None]:
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", timeout_graceful_shutdown=1)
    server = ListeningServer(config)
    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve)
        with anyio.fail_after(10):
            await server.listening.wait()
        yield server
        server.should_exit = True


@dataclass
class Mesh:
    broker: Broker
    store: SqliteStore
    audit: AuditLog
    ledger: Ledger
    url: str

    def api_key(self, tenant: str, subject: str) -> str:
        record, token = new_api_key(tenant, subject, ())
        self.store.add_api_key(record)
        return token

    @asynccontextmanager
    async def client(self, token: str, *, streaming: bool = False, binding: str = "JSONRPC") -> AsyncGenerator[Client]:
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=10) as http:
            card = await A2ACardResolver(http, self.url).get_agent_card()
            config = ClientConfig(streaming=streaming, httpx_client=http, supported_protocol_bindings=[binding])
            yield ClientFactory(config).create(card)


@pytest.fixture
async def mesh(tmp_path: Path) -> AsyncGenerator[Mesh]:
    store = SqliteStore(tmp_path / "registry.db")
    ledger = Ledger()
    handler = DefaultRequestHandler(
        agent_executor=LedgerExecutor(ledger), task_store=InMemoryTaskStore(), agent_card=ledger_card("http://x")
    )
    target_app = Starlette(
        routes=create_jsonrpc_routes(handler, "/a2a", context_builder=RecordingContextBuilder(ledger))
    )
    config = BrokerConfig(
        enabled=True, port=0, relay_timeout_s=2, credentials={"ledger": {"Authorization": BROKER_SECRET}}
    )
    audit = AuditLog(store)
    broker = build_broker(
        config, store, RegorusEngine(DEFAULT_BUNDLE), Authenticator([], store, False), audit, allow_anonymous=False
    )
    try:
        async with serving(target_app) as target, serving(broker.asgi()) as front:
            card = ledger_card(f"http://127.0.0.1:{target.port}/a2a")
            store.add_agent(AgentRecord("ledger", "finance", MessageToJson(card), "", False, "2026-01-01T00:00:00Z"))
            down = ledger_card("http://127.0.0.1:9/a2a")  # discard port: nothing listens
            store.add_agent(AgentRecord("vault", "finance", MessageToJson(down), "", False, "2026-01-01T00:00:00Z"))
            broker.base_url = f"http://127.0.0.1:{front.port}"
            yield Mesh(broker, store, audit, ledger, broker.base_url)
            ledger.release.set()
    finally:
        audit.close()
        store.close()


def quote_request(
    agent: str = "ledger", skill: str = "currency-quote", text: str = "100 EUR in USD"
) -> SendMessageRequest:
    message = new_text_message(text, role=Role.ROLE_USER)
    message.metadata.update({"io.meshgate/skill": skill})
    return SendMessageRequest(tenant=agent, message=message)


@pytest.mark.parametrize("binding", ["JSONRPC", "HTTP+JSON"])
async def test_a_granted_cross_org_delegation_is_relayed_with_the_brokers_credentials(mesh: Mesh, binding: str) -> None:
    token = mesh.api_key("travel", "planner-bot")
    async with mesh.client(token, binding=binding) as client:
        responses = [r async for r in client.send_message(quote_request())]
    task = responses[0].task
    assert TaskState.Name(task.status.state) == "TASK_STATE_COMPLETED"
    assert get_artifact_text(task.artifacts[0]) == "1 EUR = 1.08 USD"
    # the target saw the broker's credential, never the caller's, and the delegation chain
    assert mesh.ledger.headers[-1]["authorization"] == BROKER_SECRET
    assert mesh.ledger.metadata[-1]["io.meshgate/delegation"] == [
        {"subject": "planner-bot", "agent": "ledger", "scopes": []}
    ]
    assert mesh.audit.flush()
    [record] = mesh.audit.query(AuditQuery(action="a2a.message/send"))
    assert (record.allow, record.outcome, record.tenant, record.resource) == (True, "ok", "travel", "ledger")


async def test_an_ungranted_cross_org_skill_is_denied_with_reasons_and_audited(mesh: Mesh) -> None:
    token = mesh.api_key("travel", "planner-bot")
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "SendMessage",
        "params": MessageToDict(quote_request(skill="transfer-funds")),
    }
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{mesh.url}/a2a/jsonrpc", json=body, headers={"Authorization": f"Bearer {token}", "A2A-Version": "1.0"}
        )
    error = response.json()["error"]
    assert error["code"] == PolicyDeniedError.jsonrpc_code
    info = error["data"][0]
    assert info["reason"] == "POLICY_DENIED"
    assert (
        info["metadata"]["reasons"]
        == "organisation travel has no grant for skill transfer-funds of organisation finance"
    )
    assert mesh.ledger.metadata == []  # never reached the target
    assert mesh.audit.flush()
    [record] = mesh.audit.query(AuditQuery(decision_id=info["metadata"]["decision_id"]))
    assert (record.allow, record.outcome) == (False, "denied")


async def test_a_denied_delegation_reaches_an_sdk_client_as_an_error(mesh: Mesh) -> None:
    token = mesh.api_key("travel", "planner-bot")
    async with mesh.client(token) as client:
        with pytest.raises(A2AClientError) as caught:
            async for _ in client.send_message(quote_request(skill="transfer-funds")):
                pass
    assert str(PolicyDeniedError.jsonrpc_code) in str(caught.value)


async def test_a_stream_is_relayed_event_by_event_in_order(mesh: Mesh) -> None:
    token = mesh.api_key("finance", "fin-bot")
    kinds: list[str] = []
    chunks: list[str] = []
    async with mesh.client(token, streaming=True) as client:
        with anyio.fail_after(10):
            async for event in client.send_message(quote_request(skill="transfer-funds", text="stream")):
                kind = event.WhichOneof("payload")
                assert kind is not None
                kinds.append(kind)
                if kind == "artifact_update":
                    chunks.append(event.artifact_update.artifact.parts[0].text)
                    # the first chunk arrived while the target still holds the others: nothing is buffered
                    if len(chunks) == 1:
                        assert mesh.ledger.chunk_sent.is_set() and not mesh.ledger.release.is_set()
                        mesh.ledger.release.set()
    assert chunks == ["chunk0", "chunk1", "chunk2"]
    assert kinds[0] == "task" and kinds[-1] == "status_update"


async def test_only_the_principal_that_created_a_task_may_get_it(mesh: Mesh) -> None:
    owner = mesh.api_key("travel", "planner-bot")
    other = mesh.api_key("travel", "other-bot")
    async with mesh.client(owner) as client:
        task = [r async for r in client.send_message(quote_request())][0].task
        got = await client.get_task(GetTaskRequest(id=task.id))
    assert got.id == task.id and TaskState.Name(got.status.state) == "TASK_STATE_COMPLETED"
    async with mesh.client(other) as client:
        with pytest.raises(TaskNotFoundError):
            await client.get_task(GetTaskRequest(id=task.id))
        with pytest.raises(TaskNotFoundError):  # an unknown id gets exactly the same answer
            await client.get_task(GetTaskRequest(id="no-such-task"))


async def _jsonrpc_error(mesh: Mesh, token: str, request: SendMessageRequest) -> dict[str, Any]:
    body = {"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": MessageToDict(request)}
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(
            f"{mesh.url}/a2a/jsonrpc", json=body, headers={"Authorization": f"Bearer {token}", "A2A-Version": "1.0"}
        )
    return response.json()["error"]


async def test_an_unknown_agent_is_an_error(mesh: Mesh) -> None:
    token = mesh.api_key("travel", "planner-bot")
    error = await _jsonrpc_error(mesh, token, quote_request(agent="nobody"))
    assert error["code"] == AgentNotFoundError.jsonrpc_code


async def test_a_down_target_is_an_error_and_the_broker_keeps_serving(mesh: Mesh) -> None:
    token = mesh.api_key("finance", "fin-bot")
    error = await _jsonrpc_error(mesh, token, quote_request(agent="vault"))
    assert error["code"] == TargetUnavailableError.jsonrpc_code
    async with mesh.client(token) as client:
        task = [r async for r in client.send_message(quote_request())][0].task
    assert TaskState.Name(task.status.state) == "TASK_STATE_COMPLETED"


async def test_a_hanging_target_meets_the_deadline(mesh: Mesh) -> None:
    token = mesh.api_key("finance", "fin-bot")
    with anyio.fail_after(10):
        error = await _jsonrpc_error(mesh, token, quote_request(text="hang"))
    assert error["code"] == TargetTimeoutError.jsonrpc_code
    assert mesh.audit.flush()
    [record] = mesh.audit.query(AuditQuery(action="a2a.message/send"))
    assert record.outcome == "upstream_timeout"


async def test_a_call_without_credentials_is_refused(mesh: Mesh) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{mesh.url}/a2a/rest/ledger/message:send", json=MessageToDict(quote_request()))
    assert response.status_code == 401
