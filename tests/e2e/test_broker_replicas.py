"""Broker replicas on one registry over real sockets: two brokers, each on its own port and its own store
connection, share task owners and the delegation-chain seal key; a restarted broker still knows both.

The registry is a SQLite file or (where one answers) a PostgreSQL schema; the target is the ledger of
`test_broker.py`, and the delegating agent its forwarder, pointed at the other broker.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncGenerator, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from a2a.helpers import get_artifact_text
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore
from a2a.types import GetTaskRequest, ListTasksRequest, TaskState
from a2a.utils.errors import TaskNotFoundError
from google.protobuf.json_format import MessageToJson
from starlette.applications import Starlette

from a2a_broker.app import build_broker
from a2a_broker.delegation import DELEGATION_KEY, SEAL_KEY
from meshgate.config import BrokerConfig
from meshgate.identity import Authenticator
from policies import DEFAULT_BUNDLE, RegorusEngine
from registry import open_store
from registry.audit import AuditLog
from registry.models import AgentRecord
from registry.sqlite_store import SqliteStore
from registry.store import RegistryStore
from tests.e2e.test_broker import (
    Forwarder,
    Ledger,
    LedgerExecutor,
    Mesh,
    forwarding_agent,
    ledger_card,
    quote_request,
    serving,
    trip_request,
)
from tests.integration.test_registry_stores import postgres_admin_url

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


@pytest.fixture(params=["sqlite", "postgres"])
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], RegistryStore]]:
    """Opens a new store (a connection of its own, as another process would) on one shared registry."""
    opened: list[RegistryStore] = []

    def opener(url: str) -> Callable[[], RegistryStore]:
        def open_one() -> RegistryStore:
            opened.append(open_store(url))
            return opened[-1]

        return open_one

    if request.param == "sqlite":
        yield opener(str(tmp_path / "registry.db"))
        for store in opened:
            store.close()
        return

    import psycopg
    from psycopg import sql

    admin = postgres_admin_url()
    schema = f"mg_test_{uuid.uuid4().hex}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        yield opener(f"{admin}?options=-csearch_path%3D{schema}")
    finally:
        for store in opened:
            store.close()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


@asynccontextmanager
async def ledger_agent(store: RegistryStore, ledger: Ledger) -> AsyncGenerator[None]:
    handler = DefaultRequestHandler(
        agent_executor=LedgerExecutor(ledger), task_store=InMemoryTaskStore(), agent_card=ledger_card("http://x")
    )
    async with serving(Starlette(routes=create_jsonrpc_routes(handler, "/a2a"))) as target:
        card = ledger_card(f"http://127.0.0.1:{target.port}/a2a")
        store.add_agent(AgentRecord("ledger", "finance", MessageToJson(card), "", False, "2026-01-01T00:00:00Z"))
        yield


@asynccontextmanager
async def broker_on(store: RegistryStore, ledger: Ledger) -> AsyncGenerator[Mesh]:
    """One broker replica on `store`, serving on a port of its own until the block ends."""
    audit = AuditLog(store)
    config = BrokerConfig(enabled=True, port=0, relay_timeout_s=5)
    broker = build_broker(
        config, store, RegorusEngine(DEFAULT_BUNDLE), Authenticator([], store, False), audit, allow_anonymous=False
    )
    try:
        async with serving(broker.asgi()) as front:
            broker.base_url = f"http://127.0.0.1:{front.port}"
            yield Mesh(broker, store, audit, ledger, broker.base_url)
    finally:
        audit.close()


async def test_a_task_created_through_one_broker_is_its_owners_alone_through_the_other(
    registry: Callable[[], RegistryStore],
) -> None:
    ledger = Ledger()
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(broker_on(registry(), ledger))
        b = await stack.enter_async_context(broker_on(registry(), ledger))
        await stack.enter_async_context(ledger_agent(a.store, ledger))
        owner, other = a.api_key("travel", "planner-bot"), a.api_key("travel", "other-bot")
        async with a.client(owner) as client:
            task = [r async for r in client.send_message(quote_request())][0].task
        async with b.client(owner) as client:
            got = await client.get_task(GetTaskRequest(id=task.id))
            listed = await client.list_tasks(ListTasksRequest())
        assert got.id == task.id and TaskState.Name(got.status.state) == "TASK_STATE_COMPLETED"
        assert [t.id for t in listed.tasks] == [task.id]
        async with b.client(other) as client:
            with pytest.raises(TaskNotFoundError):
                await client.get_task(GetTaskRequest(id=task.id))
            assert list((await client.list_tasks(ListTasksRequest())).tasks) == []


async def test_a_chain_sealed_by_one_broker_is_continued_through_the_other(
    registry: Callable[[], RegistryStore],
) -> None:
    ledger = Ledger()
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(broker_on(registry(), ledger))
        b = await stack.enter_async_context(broker_on(registry(), ledger))
        await stack.enter_async_context(ledger_agent(a.store, ledger))
        # The concierge gets the chain sealed by broker a and delegates onward through broker b.
        concierge = Forwarder(b, b.api_key("travel", "concierge-bot"), to="ledger", skill="currency-quote")
        await stack.enter_async_context(forwarding_agent(a, "concierge", concierge))
        async with a.client(a.api_key("travel", "planner-bot")) as client:
            with anyio.fail_after(10):
                [answer] = [r async for r in client.send_message(trip_request("concierge", ["quote"]))]
    assert TaskState.Name(answer.task.status.state) == "TASK_STATE_COMPLETED"
    assert get_artifact_text(answer.task.artifacts[0]) == "1 EUR = 1.08 USD"
    assert ledger.metadata[-1][DELEGATION_KEY] == [
        {"subject": "planner-bot", "agent": "concierge", "scopes": ["quote"]},
        {"subject": "concierge-bot", "agent": "ledger", "scopes": ["quote"]},
    ]


async def test_a_restarted_broker_still_knows_its_tasks_and_its_seal(tmp_path: Path) -> None:
    path = tmp_path / "registry.db"
    ledger = Ledger()
    store = SqliteStore(path)
    try:
        async with ledger_agent(store, ledger):
            async with broker_on(store, ledger) as before:
                owner = before.api_key("travel", "planner-bot")
                async with before.client(owner) as client:
                    task = [r async for r in client.send_message(quote_request())][0].task
                sealed: dict[str, Any] = {k: ledger.metadata[-1][k] for k in (DELEGATION_KEY, SEAL_KEY)}
            store.close()
            store = SqliteStore(path)
            async with broker_on(store, ledger) as after:
                async with after.client(owner) as client:
                    got = await client.get_task(GetTaskRequest(id=task.id))
                # finance continues the chain the broker sealed before its restart
                continued = quote_request()
                continued.message.metadata.update(sealed)
                async with after.client(after.api_key("finance", "fin-bot")) as client:
                    [r async for r in client.send_message(continued)]
    finally:
        store.close()
    assert got.id == task.id
    assert [hop["subject"] for hop in ledger.metadata[-1][DELEGATION_KEY]] == ["planner-bot", "fin-bot"]
