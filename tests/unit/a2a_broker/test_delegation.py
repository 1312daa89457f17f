from __future__ import annotations

import pytest

from a2a_broker.delegation import (
    DELEGATION_KEY,
    SCOPES_KEY,
    SEAL_KEY,
    SKILL_KEY,
    ChainSeal,
    DelegationInvalid,
    TaskEntry,
    TaskOwners,
    extended_chain,
    requested_skill,
)
from meshgate.principal import Principal

BOT = Principal(subject="planner-bot", tenant="travel", issuer="apikey")


def test_a_direct_call_is_one_hop_with_the_requested_scopes() -> None:
    assert extended_chain({SCOPES_KEY: ["quote"]}, BOT, "ledger") == [
        {"subject": "planner-bot", "agent": "ledger", "scopes": ["quote"]}
    ]


def test_a_hop_without_scopes_inherits_the_previous_hops() -> None:
    prior = [{"subject": "alice", "agent": "planner", "scopes": ["quote", "pay"]}]
    chain = extended_chain({DELEGATION_KEY: prior}, BOT, "ledger")
    assert chain[-1]["scopes"] == ["quote", "pay"] and len(chain) == 2


@pytest.mark.parametrize("bad", ["x", [1], [{"subject": "a"}], [{"subject": "a", "agent": "b", "scopes": [1]}]])
def test_malformed_delegation_metadata_is_rejected(bad: object) -> None:
    with pytest.raises(DelegationInvalid):
        extended_chain({DELEGATION_KEY: bad}, BOT, "ledger")


def test_the_skill_is_the_named_one_else_the_only_one() -> None:
    assert requested_skill({SKILL_KEY: "transfer-funds"}, ["currency-quote"]) == "transfer-funds"
    assert requested_skill({}, ["currency-quote"]) == "currency-quote"
    assert requested_skill({}, ["currency-quote", "transfer-funds"]) == ""


def test_a_task_is_visible_only_to_its_first_owner() -> None:
    owners = TaskOwners(max_entries=2)
    owners.remember("t1", TaskEntry("a", "ledger", "currency-quote"))
    owners.remember("t1", TaskEntry("b", "ledger", "currency-quote"))
    assert owners.owned("t1", "a") is not None and owners.owned("t1", "b") is None
    owners.remember("t2", TaskEntry("a", "ledger", ""))
    owners.remember("t3", TaskEntry("a", "ledger", ""))
    assert owners.owned("t1", "a") is None  # bounded: the oldest went first


def test_a_sealed_chain_is_taken_back_and_an_altered_one_is_not() -> None:
    seal = ChainSeal()
    first = extended_chain({}, BOT, "concierge", seal)
    sent = {DELEGATION_KEY: first, SEAL_KEY: seal.of(first)}
    assert len(extended_chain(sent, BOT, "ledger", seal)) == 2
    widened = [{**first[0], "scopes": ["pay"]}]
    for altered in ({**sent, DELEGATION_KEY: widened}, {**sent, DELEGATION_KEY: []}, {DELEGATION_KEY: first}):
        with pytest.raises(DelegationInvalid):
            extended_chain(altered, BOT, "ledger", seal)
    with pytest.raises(DelegationInvalid):  # another broker's (or a restarted one's) seal
        extended_chain(sent, BOT, "ledger", ChainSeal())
