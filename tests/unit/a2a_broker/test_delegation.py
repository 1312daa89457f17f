from __future__ import annotations

from dataclasses import replace

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
    shared_seal,
)
from meshgate.principal import Principal
from registry.models import BrokerTask

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


class FakeRegistry:
    """The registry's task and secret tables in a dict, counting the task calls that reach it."""

    def __init__(self) -> None:
        self.tasks: dict[str, BrokerTask] = {}
        self.secrets: dict[str, bytes] = {}
        self.calls = 0

    def add_broker_task(self, task: BrokerTask) -> bool:
        self.calls += 1
        if task.task_id in self.tasks:
            return False
        self.tasks[task.task_id] = replace(task, created_at=f"2026-01-01T00:00:{len(self.tasks):02d}.000000Z")
        return True

    def find_broker_task(self, task_id: str) -> BrokerTask | None:
        self.calls += 1
        return self.tasks.get(task_id)

    def list_broker_tasks(self, owner: str, limit: int = 1000) -> list[BrokerTask]:
        self.calls += 1
        owned = sorted((t for t in self.tasks.values() if t.owner == owner), key=lambda t: t.created_at, reverse=True)
        return owned[:limit]

    def shared_secret(self, name: str, candidate: bytes) -> bytes:
        return self.secrets.setdefault(name, candidate)


def test_a_task_is_visible_only_to_its_first_owner() -> None:
    owners = TaskOwners(FakeRegistry())
    owners.remember("t1", TaskEntry("a", "ledger", "currency-quote"))
    owners.remember("t1", TaskEntry("b", "ledger", "currency-quote"))
    assert owners.owned("t1", "a") == TaskEntry("a", "ledger", "currency-quote")
    assert owners.owned("t1", "b") is None and owners.owned("t2", "a") is None


def test_brokers_on_one_registry_share_their_tasks_first_owner_first() -> None:
    registry = FakeRegistry()
    first, second = TaskOwners(registry), TaskOwners(registry)
    assert second.owned("t1", "a") is None  # not known yet, and that is not remembered
    first.remember("t1", TaskEntry("a", "ledger", "currency-quote"))
    assert second.owned("t1", "a") == TaskEntry("a", "ledger", "currency-quote")
    second.remember("t2", TaskEntry("b", "ledger", ""))
    first.remember("t2", TaskEntry("a", "ledger", ""))  # too late: t2 is b's, on both
    assert first.owned("t2", "a") is None and first.owned("t2", "b") is not None
    second.remember("t3", TaskEntry("a", "vault", ""))
    assert [task_id for task_id, _ in first.owned_by("a")] == ["t3", "t1"]  # newest first


def test_a_known_task_is_answered_from_the_cache_and_an_unknown_one_is_always_asked() -> None:
    registry = FakeRegistry()
    owners = TaskOwners(registry, cache_entries=1)
    owners.remember("t1", TaskEntry("a", "ledger", ""))
    calls = registry.calls
    for _ in range(3):  # each streamed event remembers its task again
        owners.remember("t1", TaskEntry("a", "ledger", ""))
        assert owners.owned("t1", "a") is not None
    assert registry.calls == calls
    owners.owned("t9", "a")
    owners.owned("t9", "a")
    assert registry.calls == calls + 2
    owners.remember("t2", TaskEntry("a", "ledger", ""))  # bounded: t1 leaves the cache, not the registry
    assert owners.owned("t1", "a") is not None and registry.calls == calls + 4


def test_a_sealed_chain_is_taken_back_and_an_altered_one_is_not() -> None:
    seal = ChainSeal()
    first = extended_chain({}, BOT, "concierge", seal)
    sent = {DELEGATION_KEY: first, SEAL_KEY: seal.of(first)}
    assert len(extended_chain(sent, BOT, "ledger", seal)) == 2
    widened = [{**first[0], "scopes": ["pay"]}]
    for altered in ({**sent, DELEGATION_KEY: widened}, {**sent, DELEGATION_KEY: []}, {DELEGATION_KEY: first}):
        with pytest.raises(DelegationInvalid):
            extended_chain(altered, BOT, "ledger", seal)
    with pytest.raises(DelegationInvalid):  # sealed under another key (a broker on another registry)
        extended_chain(sent, BOT, "ledger", ChainSeal())


def test_brokers_on_one_registry_share_one_seal_key() -> None:
    registry = FakeRegistry()
    first, second = shared_seal(registry), shared_seal(registry)
    chain = extended_chain({}, BOT, "concierge", first)
    assert second.verifies(chain, first.of(chain))
    assert not shared_seal(FakeRegistry()).verifies(chain, first.of(chain))
    assert "key=<hidden>" in repr(first)


def test_a_seal_key_shorter_than_32_bytes_is_refused() -> None:
    with pytest.raises(ValueError):
        ChainSeal(b"short")
