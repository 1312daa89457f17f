"""travel's A2A agent "planner": skill `trip-budget`, which totals a trip and, when a broker is configured,
delegates a `currency-quote` to finance's ledger THROUGH the broker and folds the answer into its reply.

Run: python examples/agents/travel_agent.py --host 127.0.0.1 --port 0 \
         [--broker-url URL --broker-token TOKEN --quote-agent ledger]
`--broker-url` is the broker's base URL (its card at /.well-known/agent-card.json); the target agent's
id travels as the request's `tenant` and in `metadata`. Without a broker, the planner answers alone,
in the trip's currency. The environment is read only in `main()`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `examples` importable from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import httpx
from a2a.client import A2ACardResolver, A2AClientError, ClientConfig, ClientFactory
from a2a.helpers import new_data_part, new_message, new_text_message, new_text_part
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.types import (
    AgentCapabilities,
    AgentCard,
    AgentInterface,
    AgentProvider,
    AgentSkill,
    Message,
    Role,
    SendMessageRequest,
)

from examples.agents.serving import data_objects, serve_agent

NAME = "planner"
ORGANIZATION = "travel"

_TRIP_TEXT = re.compile(
    r"(?P<nights>\d+)\s+nights?\b.*?\bat\s+(?P<rate>\d+(?:\.\d+)?)\s*(?P<currency>[A-Za-z]{3})"
    r"(?:.*?\bin\s+(?P<home>[A-Za-z]{3})\b)?",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    url: str
    """The broker's base URL."""
    token: str
    """The planner's own credential at the broker (a bearer token)."""
    quote_agent: str = "ledger"
    timeout_s: float = 10.0


@dataclass(frozen=True, slots=True)
class Trip:
    nights: int
    nightly_rate: Decimal
    currency: str
    home_currency: str

    @property
    def total(self) -> Decimal:
        return self.nights * self.nightly_rate


def parse_trip(data: dict[str, Any], text: str) -> Trip | None:
    try:
        if {"nights", "nightly_rate", "currency"} <= data.keys():
            currency = str(data["currency"]).upper()
            home = str(data.get("home_currency", currency)).upper()
            return Trip(int(data["nights"]), Decimal(str(data["nightly_rate"])), currency, home)
        found = _TRIP_TEXT.search(text)
        if found is None:
            return None
        currency = found["currency"].upper()
        return Trip(int(found["nights"]), Decimal(found["rate"]), currency, (found["home"] or currency).upper())
    except (InvalidOperation, ValueError):
        return None


async def delegate_quote(broker: BrokerConfig, amount: Decimal, source: str, target: str) -> dict[str, Any]:
    """Ask finance's ledger for a `currency-quote` through the broker; returns the answer's data part.

    Raises:
        A2AClientError: the broker or the target refused or failed.
    """
    headers = {"Authorization": f"Bearer {broker.token}"}
    async with httpx.AsyncClient(timeout=broker.timeout_s, headers=headers) as http:
        card = await A2ACardResolver(http, broker.url).get_agent_card()
        client = ClientFactory(ClientConfig(streaming=False, httpx_client=http)).create(card)
        message = new_text_message(f"{amount} {source} to {target}", role=Role.ROLE_USER)
        message.parts.append(new_data_part({"amount": str(amount), "from": source, "to": target}))
        message.metadata.update({"io.meshgate/skill": "currency-quote"})  # the skill the broker decides on
        request = SendMessageRequest(tenant=broker.quote_agent, message=message)
        try:
            async for response in client.send_message(request):
                answer = response.message if response.HasField("message") else None
                if answer is None and response.HasField("task") and response.task.artifacts:
                    answer = Message(parts=response.task.artifacts[0].parts)
                if answer is not None:
                    for data in data_objects(answer.parts):
                        if "converted" in data:
                            return data
        finally:
            await client.close()
    raise A2AClientError("the quote answer carried no data part with a conversion")


class PlannerExecutor(AgentExecutor):
    """Answers `trip-budget` with one Message (text + data)."""

    def __init__(self, broker: BrokerConfig | None = None) -> None:
        self.broker = broker

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        found = data_objects(context.message.parts) if context.message is not None else []
        data = found[0] if found else {}
        trip = parse_trip(data, context.get_user_input())
        if trip is None:
            hint = 'say e.g. "3 nights at 120 EUR in USD", or send data {"nights": 3, "nightly_rate": 120, ...}'
            await event_queue.enqueue_event(new_message([new_text_part(hint)], context_id=context.context_id))
            return
        await event_queue.enqueue_event(await self._budget(trip, context.context_id))

    async def _budget(self, trip: Trip, context_id: str | None) -> Message:
        line = f"{trip.nights} nights at {trip.nightly_rate} {trip.currency}: {trip.total} {trip.currency}"
        budget: dict[str, Any] = {"nights": trip.nights, "total": str(trip.total), "currency": trip.currency}
        if trip.home_currency != trip.currency:
            if self.broker is None:
                line += f" (no broker configured: not converted to {trip.home_currency})"
            else:
                try:
                    quoted = await delegate_quote(self.broker, trip.total, trip.currency, trip.home_currency)
                except (A2AClientError, httpx.HTTPError) as exc:
                    line += f" (the currency quote failed: {type(exc).__name__})"
                    budget["quote_error"] = type(exc).__name__
                else:
                    line += f" = {quoted['converted']} {trip.home_currency} (quoted by finance)"
                    budget.update(home_total=quoted["converted"], home_currency=trip.home_currency, quote=quoted)
        return new_message([new_text_part(line), new_data_part(budget)], context_id=context_id)

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        return None  # answers are single Messages: there is never a task to cancel


def build_card(interfaces: list[AgentInterface]) -> AgentCard:
    return AgentCard(
        name=NAME,
        description="travel's planner: trip budgets, converted to the traveller's currency by finance's ledger.",
        version="1.0.0",
        provider=AgentProvider(organization=ORGANIZATION, url="https://travel.example"),
        supported_interfaces=interfaces,
        capabilities=AgentCapabilities(streaming=True, push_notifications=False),
        default_input_modes=["text/plain", "application/json"],
        default_output_modes=["text/plain", "application/json"],
        skills=[
            AgentSkill(
                id="trip-budget",
                name="Trip budget",
                description="Totals a stay (nights x nightly rate) and converts it to a home currency.",
                tags=["travel", "budget"],
                examples=["3 nights at 120 EUR in USD"],
            )
        ],
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--no-grpc", action="store_true", help="serve JSON-RPC and HTTP+JSON only")
    # `meshgate up` passes both to the agents it launches (config `agents[].broker_key`).
    parser.add_argument("--broker-url", default=os.environ.get("MESHGATE_BROKER_URL", ""))
    parser.add_argument("--broker-token", default=os.environ.get("MESHGATE_BROKER_KEY", ""))
    parser.add_argument("--quote-agent", default="ledger", help="the registered id of finance's agent")
    args = parser.parse_args(argv)
    broker = BrokerConfig(args.broker_url, args.broker_token, args.quote_agent) if args.broker_url else None
    serving = serve_agent(
        NAME, PlannerExecutor(broker), build_card, host=args.host, port=args.port, with_grpc=not args.no_grpc
    )
    try:
        asyncio.run(serving)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
