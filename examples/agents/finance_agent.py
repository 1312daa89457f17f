"""finance's A2A agent "ledger": `currency-quote` (a Message with a text and a data part) and `transfer-funds`
(a Task: SUBMITTED -> WORKING -> COMPLETED with a receipt artifact, so a stream carries several events).

Run: python examples/agents/finance_agent.py --host 127.0.0.1 --port 0
The skill is picked by `metadata.skill` on the message (or the request), else by a data part's `skill`,
else from the text ("transfer ..." transfers, anything else quotes).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import uuid
from dataclasses import asdict, dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `examples` importable from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from a2a.helpers import new_data_part, new_message, new_task_from_user_message, new_text_part
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.tasks import TaskUpdater
from a2a.types import AgentCapabilities, AgentCard, AgentInterface, AgentProvider, AgentSkill, Message

from examples.agents.serving import data_objects, serve_agent

NAME = "ledger"
ORGANIZATION = "finance"

# Units of each currency per 1 USD: a small fixed table, so quotes are deterministic.
RATES: dict[str, Decimal] = {
    "USD": Decimal("1"),
    "EUR": Decimal("0.92"),
    "GBP": Decimal("0.79"),
    "CHF": Decimal("0.88"),
    "JPY": Decimal("151.20"),
}
CENT = Decimal("0.01")

_QUOTE_TEXT = re.compile(r"(?P<amount>\d+(?:\.\d+)?)\s*(?P<from>[A-Za-z]{3})\s+(?:to|in|into)\s+(?P<to>[A-Za-z]{3})")
_TRANSFER_TEXT = re.compile(
    r"transfer\s+(?P<amount>\d+(?:\.\d+)?)\s*(?P<currency>[A-Za-z]{3})\s+from\s+(?P<source>\S+)\s+to\s+(?P<target>\S+)",
    re.IGNORECASE,
)


class BadRequest(ValueError):
    """The message does not say what to quote or transfer; the text says why."""


@dataclass(frozen=True, slots=True)
class Quote:
    amount: str
    source: str
    target: str
    rate: str
    converted: str


@dataclass(frozen=True, slots=True)
class Transfer:
    transfer_id: str
    amount: str
    currency: str
    from_account: str
    to_account: str


def quote(amount: Decimal, source: str, target: str) -> Quote:
    """Convert through USD with the fixed table; amounts are rounded half-even to cents.

    Raises:
        BadRequest: an unknown currency or a negative amount.
    """
    source, target = source.upper(), target.upper()
    for code in (source, target):
        if code not in RATES:
            raise BadRequest(f"unknown currency {code}; known: {', '.join(sorted(RATES))}")
    if amount < 0:
        raise BadRequest("the amount must not be negative")
    rate = RATES[target] / RATES[source]
    converted = (amount * rate).quantize(CENT, rounding=ROUND_HALF_EVEN)
    return Quote(str(amount), source, target, str(rate.quantize(Decimal("0.000001"))), str(converted))


def _decimal(value: object) -> Decimal:
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise BadRequest(f"{value!r} is not an amount") from None


def _request_data(message: Message | None) -> dict[str, Any]:
    if message is None:
        return {}
    found = data_objects(message.parts)
    return found[0] if found else {}


def _skill(context: RequestContext, data: dict[str, Any], text: str) -> str:
    message_meta = dict(context.message.metadata) if context.message is not None else {}
    for source in (message_meta, context.metadata, data):
        skill = source.get("skill")
        if isinstance(skill, str):
            return skill
    return "transfer-funds" if text.strip().lower().startswith("transfer") else "currency-quote"


def parse_quote(data: dict[str, Any], text: str) -> tuple[Decimal, str, str]:
    if {"amount", "from", "to"} <= data.keys():
        return _decimal(data["amount"]), str(data["from"]), str(data["to"])
    found = _QUOTE_TEXT.search(text)
    if found is None:
        raise BadRequest('say e.g. "100 EUR to USD", or send data {"amount": 100, "from": "EUR", "to": "USD"}')
    return _decimal(found["amount"]), found["from"], found["to"]


def parse_transfer(data: dict[str, Any], text: str) -> tuple[Decimal, str, str, str]:
    keys = {"amount", "currency", "from_account", "to_account"}
    if keys <= data.keys():
        return _decimal(data["amount"]), str(data["currency"]), str(data["from_account"]), str(data["to_account"])
    found = _TRANSFER_TEXT.search(text)
    if found is None:
        raise BadRequest('say e.g. "transfer 250 EUR from acc-1 to acc-2"')
    return _decimal(found["amount"]), found["currency"], found["source"], found["target"]


class LedgerExecutor(AgentExecutor):
    """Answers quotes with one Message; runs transfers as Tasks. Transfers are kept in memory."""

    def __init__(self) -> None:
        self.transfers: list[Transfer] = []

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        text = context.get_user_input()
        data = _request_data(context.message)
        if _skill(context, data, text) == "transfer-funds":
            await self._transfer(context, event_queue, data, text)
        else:
            await event_queue.enqueue_event(self._quote_message(context, data, text))

    def _quote_message(self, context: RequestContext, data: dict[str, Any], text: str) -> Message:
        try:
            q = quote(*parse_quote(data, text))
        except BadRequest as exc:
            parts = [new_text_part(f"cannot quote: {exc}"), new_data_part({"error": str(exc)})]
            return new_message(parts, context_id=context.context_id)
        line = f"{q.amount} {q.source} = {q.converted} {q.target} (rate {q.rate})"
        return new_message([new_text_part(line), new_data_part(asdict(q))], context_id=context.context_id)

    async def _transfer(
        self, context: RequestContext, event_queue: EventQueue, data: dict[str, Any], text: str
    ) -> None:
        task = context.current_task
        if task is None:
            assert context.message is not None  # the SDK builds the context from a message
            task = new_task_from_user_message(context.message)
            await event_queue.enqueue_event(task)  # the Task MUST be the first event
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        try:
            amount, currency, source, target = parse_transfer(data, text)
            if currency.upper() not in RATES or amount <= 0:
                raise BadRequest(f"cannot transfer {amount} {currency}")
        except BadRequest as exc:
            await updater.reject(updater.new_agent_message([new_text_part(f"transfer rejected: {exc}")]))
            return
        await updater.start_work(updater.new_agent_message([new_text_part("recording the transfer")]))
        await asyncio.sleep(0)  # let a streaming client see WORKING as its own event
        record = Transfer(str(uuid.uuid4()), str(amount.quantize(CENT)), currency.upper(), source, target)
        self.transfers.append(record)
        receipt = f"transferred {record.amount} {record.currency} from {source} to {target} ({record.transfer_id})"
        await updater.add_artifact([new_text_part(receipt), new_data_part(asdict(record))], name="receipt")
        await updater.complete(updater.new_agent_message([new_text_part(receipt)]))

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.task_id is not None and context.context_id is not None
        await TaskUpdater(event_queue, context.task_id, context.context_id).cancel()


def build_card(interfaces: list[AgentInterface]) -> AgentCard:
    return AgentCard(
        name=NAME,
        description="finance's ledger: currency quotes from a fixed rate table, and funds transfers.",
        version="1.0.0",
        provider=AgentProvider(organization=ORGANIZATION, url="https://finance.example"),
        supported_interfaces=interfaces,
        capabilities=AgentCapabilities(streaming=True, push_notifications=True),
        default_input_modes=["text/plain", "application/json"],
        default_output_modes=["text/plain", "application/json"],
        skills=[
            AgentSkill(
                id="currency-quote",
                name="Currency quote",
                description="Converts an amount between USD, EUR, GBP, CHF and JPY at the ledger's fixed rates.",
                tags=["finance", "currency", "quote"],
                examples=["100 EUR to USD", '{"amount": 100, "from": "EUR", "to": "USD"}'],
            ),
            AgentSkill(
                id="transfer-funds",
                name="Transfer funds",
                description="Records a transfer between two accounts and returns a receipt.",
                tags=["finance", "payments", "transfer"],
                examples=["transfer 250 EUR from acc-1 to acc-2"],
            ),
        ],
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--no-grpc", action="store_true", help="serve JSON-RPC and HTTP+JSON only")
    args = parser.parse_args(argv)
    serving = serve_agent(
        NAME, LedgerExecutor(), build_card, host=args.host, port=args.port, with_grpc=not args.no_grpc
    )
    try:
        asyncio.run(serving)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
