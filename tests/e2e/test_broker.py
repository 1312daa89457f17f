"""The A2A broker over real sockets: a2a-sdk clients → broker → a2a-sdk target agents, all on 127.0.0.1.

The target ("ledger", organisation finance) runs in the test's event loop so the test can hold its
stream open between events; the shipped bundle grants travel finance's `currency-quote` only.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import grpc
import grpc.aio
import httpx
import pytest
import uvicorn
from a2a.client import A2ACardResolver, A2AClientError, Client, ClientCallContext, ClientConfig, ClientFactory
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
    CancelTaskRequest,
    GetTaskRequest,
    Part,
    Role,
    SendMessageConfiguration,
    SendMessageRequest,
    SubscribeToTaskRequest,
    TaskState,
)
from a2a.utils.errors import JSON_RPC_ERROR_CODE_MAP, A2AError, InvalidParamsError, TaskNotFoundError
from google.protobuf.json_format import MessageToDict, MessageToJson
from starlette.applications import Starlette
from starlette.requests import Request

from a2a_broker.app import Broker, build_broker
from a2a_broker.delegation import DELEGATION_KEY, SCOPES_KEY, SEAL_KEY, SKILL_KEY
from a2a_broker.wire_errors import AgentNotFoundError, PolicyDeniedError, TargetTimeoutError, TargetUnavailableError
from meshgate.config import BrokerConfig
from meshgate.identity import Authenticator, new_api_key
from meshgate.serving import ListeningServer
from policies import DEFAULT_BUNDLE, RegorusEngine
from registry.audit import AuditLog
from registry.models import AgentRecord, AuditQuery
from registry.sqlite_store import SqliteStore
from registry.store import RegistryStore

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
    store: RegistryStore
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
            if binding == "GRPC":
                config.grpc_channel_factory = grpc.aio.insecure_channel
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
        enabled=True, port=0, relay_timeout_s=2, grpc_port=0, credentials={"ledger": {"Authorization": BROKER_SECRET}}
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
    assert info["metadata"]["reasons"] == "organisation travel has no grant for skill transfer-funds of agent ledger"
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


async def test_a_message_to_an_unknown_agent_is_decided_and_audited(mesh: Mesh) -> None:
    token = mesh.api_key("travel", "planner-bot")
    error = await _jsonrpc_error(mesh, token, quote_request(agent="nobody"))
    assert error["code"] == PolicyDeniedError.jsonrpc_code  # travel may not reach an agent of no organisation
    assert mesh.audit.flush()
    [record] = mesh.audit.query(AuditQuery(action="a2a.message/send"))
    assert (record.resource, record.allow, record.outcome) == ("nobody", False, "agent_not_found")
    assert record.decision_id == error["data"][0]["metadata"]["decision_id"]
    assert record.input is not None and record.input["resource"]["organization"] == ""


async def test_only_a_principal_the_policy_allows_learns_that_an_agent_is_unknown(mesh: Mesh) -> None:
    # The shipped bundle grants travel model smollm2, which no node has registered in this mesh.
    token = mesh.api_key("travel", "planner-bot")
    error = await _jsonrpc_error(mesh, token, quote_request(agent="smollm2", skill=""))
    assert error["code"] == AgentNotFoundError.jsonrpc_code
    assert mesh.audit.flush()
    [record] = mesh.audit.query(AuditQuery(action="a2a.message/send"))
    assert (record.resource, record.allow, record.outcome) == ("smollm2", True, "agent_not_found")


@pytest.mark.parametrize("skill", ["transfer-funds", ""])
async def test_an_unknown_agent_answers_an_outsider_exactly_like_an_unreachable_one(mesh: Mesh, skill: str) -> None:
    # Spec §13.1: an outsider must not learn whether an agent exists. Both ids are 6 characters, so that
    # after naming the agent each answer differs in nothing but its random decision id.
    token = mesh.api_key("travel", "planner-bot")

    async def answers(agent: str) -> list[str]:
        request = quote_request(agent=agent, skill=skill)
        error = await _jsonrpc_error(mesh, token, request)
        async with httpx.AsyncClient(timeout=10) as http:
            response = await http.post(
                f"{mesh.url}/a2a/rest/{agent}/message:send",
                json=MessageToDict(request),
                headers={"Authorization": f"Bearer {token}", "A2A-Version": "1.0"},
            )
        rest = response.json()
        for info in (*error["data"], *rest["error"]["details"]):
            info.get("metadata", {}).pop("decision_id", None)
        return [json.dumps(error), str(response.status_code), json.dumps(rest)]

    existing, unknown = await answers("ledger"), await answers("nobody")
    assert json.loads(existing[0])["code"] == PolicyDeniedError.jsonrpc_code and existing[1] == "403"
    assert [a.replace("nobody", "ledger") for a in unknown] == existing
    assert mesh.ledger.metadata == []


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


# Two-hop delegation: agents that answer by delegating onward through the broker as themselves.


@dataclass
class Forwarder:
    """A delegating agent's wiring: who it acts as at the broker, where it delegates, which scopes it asks."""

    mesh: Mesh
    token: str
    to: str
    skill: str = ""
    scopes: list[str] | None = None
    drop_first_hop: bool = False


class ForwardingExecutor(AgentExecutor):
    def __init__(self, forwarder: Forwarder) -> None:
        self.forwarder = forwarder

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.message is not None
        f = self.forwarder
        received = MessageToDict(context.message.metadata)
        onward = new_text_message(context.get_user_input(), role=Role.ROLE_USER)
        # pass the chain on exactly as the broker sealed it
        passed: dict[str, Any] = {k: received[k] for k in (DELEGATION_KEY, SEAL_KEY) if k in received}
        if f.drop_first_hop:
            passed[DELEGATION_KEY] = passed[DELEGATION_KEY][1:]
        if f.skill:
            passed[SKILL_KEY] = f.skill
        if f.scopes is not None:
            passed[SCOPES_KEY] = f.scopes
        onward.metadata.update(passed)
        task = new_task_from_user_message(context.message)
        await event_queue.enqueue_event(task)
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        try:
            async with f.mesh.client(f.token) as client:
                [answer] = [r async for r in client.send_message(SendMessageRequest(tenant=f.to, message=onward))]
        except (A2AClientError, A2AError):  # refused by the broker: this agent fails its own task
            await updater.failed()
            return
        if answer.task.status.state != TaskState.TASK_STATE_COMPLETED:
            await updater.failed()
            return
        await updater.add_artifact(list(answer.task.artifacts[0].parts), artifact_id="answer")
        await updater.complete()

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        await TaskUpdater(event_queue, context.task_id or "", context.context_id or "").cancel()


def travel_card(name: str, url: str) -> AgentCard:
    return AgentCard(
        name=name,
        description="Travel: books trips, pays in any currency",
        version="1.0.0",
        provider=AgentProvider(organization="travel", url="https://travel.example"),
        supported_interfaces=[AgentInterface(protocol_binding="JSONRPC", protocol_version="1.0", url=url)],
        capabilities=AgentCapabilities(streaming=False),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=[AgentSkill(id="plan-trip", name="Plan", description="Plans trips", tags=["travel"])],
    )


@asynccontextmanager
async def forwarding_agent(mesh: Mesh, agent_id: str, forwarder: Forwarder) -> AsyncGenerator[None]:
    handler = DefaultRequestHandler(
        agent_executor=ForwardingExecutor(forwarder),
        task_store=InMemoryTaskStore(),
        agent_card=travel_card(agent_id, "http://x"),
    )
    async with serving(Starlette(routes=create_jsonrpc_routes(handler, "/a2a"))) as server:
        card = travel_card(agent_id, f"http://127.0.0.1:{server.port}/a2a")
        mesh.store.add_agent(AgentRecord(agent_id, "travel", MessageToJson(card), "", False, "2026-01-01T00:00:00Z"))
        yield


def trip_request(agent: str, scopes: list[str] | None = None) -> SendMessageRequest:
    message = new_text_message("100 EUR in USD", role=Role.ROLE_USER)
    if scopes is not None:
        message.metadata.update({SCOPES_KEY: scopes})
    return SendMessageRequest(tenant=agent, message=message)


async def test_a_two_hop_delegation_within_the_depth_limit_carries_the_whole_chain(mesh: Mesh) -> None:
    planner = mesh.api_key("travel", "planner-bot")
    concierge = Forwarder(mesh, mesh.api_key("travel", "concierge-bot"), to="ledger", skill="currency-quote")
    async with forwarding_agent(mesh, "concierge", concierge), mesh.client(planner) as client:
        with anyio.fail_after(10):
            [answer] = [r async for r in client.send_message(trip_request("concierge", ["quote"]))]
    assert TaskState.Name(answer.task.status.state) == "TASK_STATE_COMPLETED"
    assert get_artifact_text(answer.task.artifacts[0]) == "1 EUR = 1.08 USD"
    assert mesh.ledger.metadata[-1][DELEGATION_KEY] == [
        {"subject": "planner-bot", "agent": "concierge", "scopes": ["quote"]},
        {"subject": "concierge-bot", "agent": "ledger", "scopes": ["quote"]},
    ]


async def test_a_chain_one_hop_too_long_is_cut_by_the_depth_rule_and_audited(mesh: Mesh) -> None:
    planner = mesh.api_key("travel", "planner-bot")
    desk = Forwarder(mesh, mesh.api_key("travel", "desk-bot"), to="concierge")
    concierge = Forwarder(mesh, mesh.api_key("travel", "concierge-bot"), to="ledger", skill="currency-quote")
    async with (
        forwarding_agent(mesh, "desk", desk),
        forwarding_agent(mesh, "concierge", concierge),
        mesh.client(planner) as client,
    ):
        with anyio.fail_after(10):
            [answer] = [r async for r in client.send_message(trip_request("desk"))]
    assert TaskState.Name(answer.task.status.state) == "TASK_STATE_FAILED"
    assert mesh.ledger.metadata == []  # the third hop never reached the target
    [denied] = mesh.audit.query(AuditQuery(action="a2a.message/send", allow=False))
    assert (denied.subject, denied.resource, denied.outcome) == ("concierge-bot", "ledger", "denied")
    assert denied.reasons == ("delegation chain of 3 hops exceeds the maximum of 2",)
    assert denied.input is not None
    assert [hop["agent"] for hop in denied.input["delegation"]] == ["desk", "concierge", "ledger"]


async def test_a_hop_that_widens_its_scopes_is_denied(mesh: Mesh) -> None:
    planner = mesh.api_key("travel", "planner-bot")
    concierge = Forwarder(
        mesh, mesh.api_key("travel", "concierge-bot"), to="ledger", skill="currency-quote", scopes=["quote", "pay"]
    )
    async with forwarding_agent(mesh, "concierge", concierge), mesh.client(planner) as client:
        with anyio.fail_after(10):
            [answer] = [r async for r in client.send_message(trip_request("concierge", ["quote"]))]
    assert TaskState.Name(answer.task.status.state) == "TASK_STATE_FAILED"
    [denied] = mesh.audit.query(AuditQuery(action="a2a.message/send", allow=False))
    assert denied.reasons == ("hop 2 (agent ledger) widens the scopes of hop 1 with pay",)


async def test_a_delegated_agent_cannot_drop_hops_from_its_chain(mesh: Mesh) -> None:
    planner = mesh.api_key("travel", "planner-bot")
    concierge = Forwarder(
        mesh, mesh.api_key("travel", "concierge-bot"), to="ledger", skill="currency-quote", drop_first_hop=True
    )
    async with forwarding_agent(mesh, "concierge", concierge), mesh.client(planner) as client:
        with anyio.fail_after(10):
            [answer] = [r async for r in client.send_message(trip_request("concierge"))]
    assert TaskState.Name(answer.task.status.state) == "TASK_STATE_FAILED"
    assert mesh.ledger.metadata == []


async def test_a_chain_the_broker_did_not_seal_or_sent_to_another_org_is_invalid(mesh: Mesh) -> None:
    forged = quote_request()
    forged.message.metadata.update({DELEGATION_KEY: [{"subject": "alice", "agent": "planner", "scopes": ["all"]}]})
    error = await _jsonrpc_error(mesh, mesh.api_key("travel", "planner-bot"), forged)
    assert error["code"] == JSON_RPC_ERROR_CODE_MAP[InvalidParamsError]
    # a sealed chain handed to finance's ledger, replayed by a travel principal
    async with mesh.client(mesh.api_key("travel", "planner-bot")) as client:
        [r async for r in client.send_message(quote_request())]
    replayed = quote_request()
    replayed.message.metadata.update({k: mesh.ledger.metadata[-1][k] for k in (DELEGATION_KEY, SEAL_KEY)})
    error = await _jsonrpc_error(mesh, mesh.api_key("travel", "other-bot"), replayed)
    assert error["code"] == JSON_RPC_ERROR_CODE_MAP[InvalidParamsError]


# Tasks: cancel and resubscribe, owner only


def held_request(text: str) -> SendMessageRequest:
    request = quote_request(text=text)
    request.configuration.CopyFrom(SendMessageConfiguration(return_immediately=True))
    return request


@pytest.mark.parametrize("binding", ["JSONRPC", "HTTP+JSON"])
async def test_only_the_owner_may_cancel_a_task(mesh: Mesh, binding: str) -> None:
    owner = mesh.api_key("travel", "planner-bot")
    other = mesh.api_key("travel", "other-bot")
    async with mesh.client(owner, binding=binding) as client:
        [submitted] = [r async for r in client.send_message(held_request("hang"))]
    task_id = submitted.task.id
    assert task_id
    async with mesh.client(other, binding=binding) as client:
        for unseen in (task_id, "no-such-task"):  # someone else's task reads exactly like an unknown one
            with pytest.raises(TaskNotFoundError):
                await client.cancel_task(CancelTaskRequest(id=unseen))
    async with mesh.client(owner, binding=binding) as client:
        with anyio.fail_after(5):
            canceled = await client.cancel_task(CancelTaskRequest(id=task_id))
    assert (canceled.id, TaskState.Name(canceled.status.state)) == (task_id, "TASK_STATE_CANCELED")
    [record] = mesh.audit.query(AuditQuery(action="a2a.tasks/cancel"))
    assert (record.allow, record.outcome, record.resource) == (True, "ok", task_id)


async def test_only_the_owner_may_resubscribe_and_events_follow_the_snapshot(mesh: Mesh) -> None:
    owner = mesh.api_key("finance", "fin-bot")
    other = mesh.api_key("finance", "other-bot")
    async with mesh.client(owner) as client:
        [submitted] = [r async for r in client.send_message(held_request("stream"))]
    task_id = submitted.task.id
    with anyio.fail_after(5):
        await mesh.ledger.chunk_sent.wait()
    async with mesh.client(other, streaming=True) as client:
        with pytest.raises(TaskNotFoundError):
            async for _ in client.subscribe(SubscribeToTaskRequest(id=task_id)):
                pass
    kinds: list[str] = []
    chunks: list[str] = []
    async with mesh.client(owner, streaming=True) as client:
        with anyio.fail_after(10):
            async for event in client.subscribe(SubscribeToTaskRequest(id=task_id)):
                kind = event.WhichOneof("payload")
                assert kind is not None
                kinds.append(kind)
                if kind == "task":  # the snapshot first; only then let the target go on
                    assert event.task.id == task_id
                    mesh.ledger.release.set()
                if kind == "artifact_update":
                    chunks.append(event.artifact_update.artifact.parts[0].text)
    assert kinds[0] == "task" and kinds[-1] == "status_update"
    assert chunks == ["chunk1", "chunk2"]  # A2A has no replay: chunk0 was sent before the subscription


# Discovery: GET /a2a/agents, filtered by policy, cards verbatim


def register_discovery_agents(mesh: Mesh) -> str:
    """Adds travel's concierge and finance's payroll (transfers only); returns payroll's card as stored."""
    concierge = travel_card("concierge", "http://127.0.0.1:9/a2a")
    mesh.store.add_agent(
        AgentRecord("concierge", "travel", MessageToJson(concierge), "", False, "2026-01-01T00:00:00Z")
    )
    payroll = MessageToDict(ledger_card("http://127.0.0.1:9/a2a"))
    payroll["skills"] = [s for s in payroll["skills"] if s["id"] == "transfer-funds"]
    # an unusual but valid layout (reversed keys, no spaces): any rewriting would show
    stored = json.dumps(dict(reversed(payroll.items())), separators=(",", ":"))
    mesh.store.add_agent(AgentRecord("payroll", "finance", stored, "", False, "2026-01-01T00:00:00Z"))
    return stored


async def discover(mesh: Mesh, token: str | None, query: str = "") -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.get(f"{mesh.url}/a2a/agents{query}", headers=headers)


def ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [entry["id"] for entry in response.json()["agents"]]


async def test_discovery_shows_a_principal_only_the_agents_it_may_reach(mesh: Mesh) -> None:
    register_discovery_agents(mesh)
    # travel may reach finance's currency-quote: ledger and vault offer it, payroll does not
    assert ids(await discover(mesh, mesh.api_key("travel", "planner-bot"))) == ["concierge", "ledger", "vault"]
    # finance has no grants: its own organisation's agents only
    assert ids(await discover(mesh, mesh.api_key("finance", "fin-bot"))) == ["ledger", "payroll", "vault"]
    assert ids(await discover(mesh, mesh.api_key("globex", "bot"))) == []
    [record, *_] = mesh.audit.query(AuditQuery(action="a2a.agents/discover"))
    assert (record.allow, record.outcome) == (True, "ok")


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("?skill=currency-quote", ["ledger", "vault"]),
        ("?tag=travel", ["concierge"]),
        ("?org=finance", ["ledger", "vault"]),
        ("?input_mode=text/plain&org=travel", ["concierge"]),
        ("?output_mode=application/pdf", []),
        ("?skill=transfer-funds", ["ledger", "vault"]),  # payroll offers it, but travel may not reach payroll
    ],
)
async def test_discovery_filters_by_skill_tag_organisation_and_media_type(
    mesh: Mesh, query: str, expected: list[str]
) -> None:
    register_discovery_agents(mesh)
    assert ids(await discover(mesh, mesh.api_key("travel", "planner-bot"), query)) == expected


async def test_discovered_cards_are_served_verbatim(mesh: Mesh) -> None:
    stored = register_discovery_agents(mesh)
    token = mesh.api_key("finance", "fin-bot")
    listed = await discover(mesh, token, "?skill=transfer-funds")
    assert stored in listed.text  # spliced in byte-for-byte, never re-serialised
    [entry] = [e for e in listed.json()["agents"] if e["id"] == "payroll"]
    assert (entry["organization"], entry["signed"]) == ("finance", False)
    one = await discover(mesh, token, "/payroll")
    assert one.content == stored.encode()


async def test_an_unreachable_agent_reads_like_an_unknown_one(mesh: Mesh) -> None:
    register_discovery_agents(mesh)
    token = mesh.api_key("travel", "planner-bot")
    unseen, unknown = await discover(mesh, token, "/payroll"), await discover(mesh, token, "/nobody")
    assert (unseen.status_code, unknown.status_code) == (404, 404)
    assert unseen.json()["error"]["status"] == unknown.json()["error"]["status"] == "NOT_FOUND"


async def test_discovery_needs_credentials(mesh: Mesh) -> None:
    response = await discover(mesh, None)
    assert (response.status_code, response.json()["error"]["status"]) == (401, "UNAUTHENTICATED")


# The gRPC binding: the same handler, authentication, policy and audit


async def test_the_grpc_binding_is_authenticated_and_governed_like_the_others(mesh: Mesh) -> None:
    token = mesh.api_key("travel", "planner-bot")
    as_planner = ClientCallContext(service_parameters={"authorization": f"Bearer {token}"})
    async with mesh.client(token, binding="GRPC") as client:
        with anyio.fail_after(10):
            [answer] = [r async for r in client.send_message(quote_request(), context=as_planner)]
            got = await client.get_task(GetTaskRequest(id=answer.task.id), context=as_planner)
        assert TaskState.Name(got.status.state) == "TASK_STATE_COMPLETED"
        assert mesh.ledger.headers[-1]["authorization"] == BROKER_SECRET
        with pytest.raises(A2AClientError) as denied:
            [r async for r in client.send_message(quote_request(skill="transfer-funds"), context=as_planner)]
        with pytest.raises(A2AClientError) as anonymous:
            [r async for r in client.send_message(quote_request())]
    assert isinstance(denied.value.__cause__, grpc.aio.AioRpcError)
    assert denied.value.__cause__.code() == grpc.StatusCode.PERMISSION_DENIED
    assert isinstance(anonymous.value.__cause__, grpc.aio.AioRpcError)
    assert anonymous.value.__cause__.code() == grpc.StatusCode.UNAUTHENTICATED
    [record] = mesh.audit.query(AuditQuery(action="a2a.message/send", allow=False))
    assert record.tenant == "travel"
