"""The example A2A agents of finance ("ledger") and travel ("planner"), run as real processes on 127.0.0.1:0
and driven by the a2a-sdk client over JSON-RPC, HTTP+JSON and gRPC."""

from __future__ import annotations

import selectors
import subprocess
import sys
from collections.abc import AsyncGenerator, Callable, Generator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import grpc.aio
import httpx
import pytest
from a2a.client import A2ACardResolver, Client, ClientConfig, ClientFactory
from a2a.helpers import get_message_text, new_text_message
from a2a.types import AgentCard, GetTaskRequest, Role, SendMessageRequest, StreamResponse, TaskState
from google.protobuf.json_format import MessageToDict

from examples.agents.serving import data_objects

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

AGENTS = Path(__file__).parents[2] / "examples" / "agents"
START_TIMEOUT_S = 20
BINDINGS = ["JSONRPC", "HTTP+JSON", "GRPC"]


@contextmanager
def running_agent(script: str, *args: str) -> Generator[str, None, None]:
    """Start an example agent on port 0; yield the base URL it announces on stdout's first line."""
    command = [sys.executable, str(AGENTS / script), "--host", "127.0.0.1", "--port", "0", *args]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            assert selector.select(START_TIMEOUT_S), f"{script} did not announce its URL"
        line = process.stdout.readline()
        assert " listening on http://127.0.0.1:" in line, line
        yield line.rsplit(" ", 1)[-1].strip()
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def ledger() -> Generator[str, None, None]:
    with running_agent("finance_agent.py") as url:
        yield url


@pytest.fixture(scope="module")
def planner_alone() -> Generator[str, None, None]:
    with running_agent("travel_agent.py", "--no-grpc") as url:
        yield url


@asynccontextmanager
async def a2a_client(base_url: str, binding: str, *, streaming: bool) -> AsyncGenerator[tuple[Client, AgentCard]]:
    async with httpx.AsyncClient(timeout=10) as http:
        card = await A2ACardResolver(http, base_url).get_agent_card()
        channel_factory: Callable[[str], grpc.aio.Channel] = grpc.aio.insecure_channel
        config = ClientConfig(
            streaming=streaming,
            httpx_client=http,
            supported_protocol_bindings=[binding],
            grpc_channel_factory=channel_factory,
        )
        client = ClientFactory(config).create(card)
        try:
            yield client, card
        finally:
            await client.close()


async def collect(client: Client, text: str) -> list[StreamResponse]:
    request = SendMessageRequest(message=new_text_message(text, role=Role.ROLE_USER))
    return [event async for event in client.send_message(request)]


def data_of(parts: Any) -> dict[str, Any]:
    (data,) = data_objects(parts)
    return data


async def test_the_ledger_card_has_the_a2a_1_0_fields(ledger: str) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        card = await A2ACardResolver(http, ledger).get_agent_card()
        raw = (await http.get(ledger + "/.well-known/agent-card.json")).json()
    assert card.name == "ledger" and card.version == "1.0.0" and card.description
    assert card.provider.organization == "finance"
    assert card.capabilities.streaming
    assert [(i.protocol_binding, i.protocol_version) for i in card.supported_interfaces] == [
        ("JSONRPC", "1.0"),
        ("HTTP+JSON", "1.0"),
        ("GRPC", "1.0"),
    ]
    assert card.supported_interfaces[0].url == ledger + "/a2a/jsonrpc"
    assert list(card.default_input_modes) == ["text/plain", "application/json"]
    assert [s.id for s in card.skills] == ["currency-quote", "transfer-funds"]
    assert all(s.name and s.description and s.tags for s in card.skills)
    # strict 1.0: no legacy 0.3 top-level fields
    assert not {"url", "preferredTransport", "protocolVersion"} & raw.keys()
    assert raw == MessageToDict(card)


@pytest.mark.parametrize("binding", BINDINGS)
async def test_a_currency_quote_is_one_message_with_a_text_and_a_data_part(ledger: str, binding: str) -> None:
    async with a2a_client(ledger, binding, streaming=False) as (client, _):
        (response,) = await collect(client, "100 EUR to USD")
    assert response.WhichOneof("payload") == "message"
    assert response.message.role == Role.ROLE_AGENT
    assert get_message_text(response.message, delimiter="") == "100 EUR = 108.70 USD (rate 1.086957)"
    assert data_of(response.message.parts) == {
        "amount": "100",
        "source": "EUR",
        "target": "USD",
        "rate": "1.086957",
        "converted": "108.70",
    }


async def test_an_unknown_currency_is_explained_not_quoted(ledger: str) -> None:
    async with a2a_client(ledger, "JSONRPC", streaming=False) as (client, _):
        (response,) = await collect(client, "100 XXX to USD")
    assert "unknown currency XXX" in get_message_text(response.message)


@pytest.mark.parametrize("binding", BINDINGS)
async def test_a_blocking_transfer_returns_a_completed_task_with_a_receipt(ledger: str, binding: str) -> None:
    async with a2a_client(ledger, binding, streaming=False) as (client, _):
        (response,) = await collect(client, "transfer 250 EUR from acc-1 to acc-2")
        task = response.task
        assert task.status.state == TaskState.TASK_STATE_COMPLETED
        (artifact,) = task.artifacts
        receipt = data_of(artifact.parts)
        assert {k: receipt[k] for k in ("amount", "currency", "from_account", "to_account")} == {
            "amount": "250.00",
            "currency": "EUR",
            "from_account": "acc-1",
            "to_account": "acc-2",
        }
        got = await client.get_task(GetTaskRequest(id=task.id))
    assert got.status.state == TaskState.TASK_STATE_COMPLETED
    assert got.artifacts[0].artifact_id == artifact.artifact_id


@pytest.mark.parametrize("binding", BINDINGS)
async def test_a_streamed_transfer_goes_submitted_working_completed(ledger: str, binding: str) -> None:
    async with a2a_client(ledger, binding, streaming=True) as (client, _):
        events = await collect(client, "transfer 10 USD from acc-1 to acc-3")
    kinds = [e.WhichOneof("payload") for e in events]
    assert kinds == ["task", "status_update", "artifact_update", "status_update"]
    states = [e.status_update.status.state for e in events if e.HasField("status_update")]
    assert events[0].task.status.state == TaskState.TASK_STATE_SUBMITTED
    assert states == [TaskState.TASK_STATE_WORKING, TaskState.TASK_STATE_COMPLETED]
    assert len({e.task.id or e.status_update.task_id or e.artifact_update.task_id for e in events}) == 1


async def test_an_unparsable_transfer_is_rejected(ledger: str) -> None:
    async with a2a_client(ledger, "JSONRPC", streaming=False) as (client, _):
        (response,) = await collect(client, "transfer lots of money")
    assert response.task.status.state == TaskState.TASK_STATE_REJECTED


async def test_the_planner_card_belongs_to_travel(planner_alone: str) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        card = await A2ACardResolver(http, planner_alone).get_agent_card()
    assert card.provider.organization == "travel" and card.capabilities.streaming
    assert [s.id for s in card.skills] == ["trip-budget"]
    assert [i.protocol_binding for i in card.supported_interfaces] == ["JSONRPC", "HTTP+JSON"]


@pytest.mark.parametrize("binding", ["JSONRPC", "HTTP+JSON"])
async def test_without_a_broker_the_planner_answers_alone(planner_alone: str, binding: str) -> None:
    async with a2a_client(planner_alone, binding, streaming=True) as (client, _):
        (response,) = await collect(client, "3 nights at 120 EUR in USD")
    assert get_message_text(response.message).startswith("3 nights at 120 EUR: 360 EUR (no broker configured")
    assert data_of(response.message.parts)["total"] == "360"


async def test_the_planner_delegates_the_quote_and_folds_it_in(ledger: str) -> None:
    # The ledger itself stands in for the broker here: the planner's side of delegation is plain A2A
    # (card resolved at the broker URL, target id as `tenant`, its own bearer token). Through the real
    # broker this runs in the broker's tests.
    with running_agent("travel_agent.py", "--no-grpc", "--broker-url", ledger, "--broker-token", "t0k") as planner:
        async with a2a_client(planner, "JSONRPC", streaming=False) as (client, _):
            (response,) = await collect(client, "3 nights at 120 EUR in USD")
    assert get_message_text(response.message) == "3 nights at 120 EUR: 360 EUR = 391.30 USD (quoted by finance)"
    budget = data_of(response.message.parts)
    assert budget["home_total"] == "391.30" and budget["quote"]["rate"] == "1.086957"


async def test_a_broker_that_is_down_is_reported_in_the_answer(free_port: int) -> None:
    broker = f"http://127.0.0.1:{free_port}"
    with running_agent("travel_agent.py", "--no-grpc", "--broker-url", broker, "--broker-token", "t") as planner:
        async with a2a_client(planner, "JSONRPC", streaming=False) as (client, _):
            (response,) = await collect(client, "2 nights at 100 GBP in EUR")
    assert "the currency quote failed" in get_message_text(response.message)
