"""The relay's card parsing, memoised on the stored card's text."""

from __future__ import annotations

from a2a.types import AgentCard, AgentSkill
from google.protobuf.json_format import MessageToJson

from a2a_broker.relay import stored_card


def card(*skills: str) -> str:
    return MessageToJson(AgentCard(name="ledger", skills=[AgentSkill(id=s, name=s) for s in skills]))


def test_the_same_stored_card_is_parsed_once() -> None:
    assert stored_card(card("currency-quote")) is stored_card(card("currency-quote"))


def test_a_re_registered_card_is_read_afresh() -> None:
    assert [s.id for s in stored_card(card("currency-quote")).skills] == ["currency-quote"]
    assert [s.id for s in stored_card(card("currency-quote", "transfer-funds")).skills] == [
        "currency-quote",
        "transfer-funds",
    ]
