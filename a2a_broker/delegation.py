"""Delegation core: the chain a message carries, the policy input's A2A parts, and who owns which task.

Protocol-free (no a2a-sdk, no Starlette): the adapters hand in plain JSON and principals. The chain
travels in message metadata under `DELEGATION_KEY` (A2A's sanctioned place for extension data); the
broker appends the current hop before deciding and forwards the extended chain to the target, so a
target that delegates again sends it back and the next decision sees every hop.

The broker seals each chain it forwards (`ChainSeal`: HMAC-SHA256, beside it under `SEAL_KEY`) and accepts
a prior chain only with its seal, so a delegated agent cannot drop, reorder or widen the hops it was given.
The key is generated once per registry and kept there (`shared_seal`), so a chain sealed by one broker
replica is accepted by another, and by the same broker after a restart. What no broker can stop is an
agent sending no chain at all: it is then decided as itself, a direct call (a policy may deny agents' own
principals direct calls). Task owners are kept in the registry too (`TaskOwners`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, cast

from meshgate.principal import Principal
from policies.input import DelegationHop, ResourceDoc
from registry.models import BrokerTask

DELEGATION_KEY = "io.meshgate/delegation"
"""Message metadata: the hops so far, `[{subject, agent, scopes}]`, first delegator first."""
SKILL_KEY = "io.meshgate/skill"
"""Message metadata: the target skill the sender asks for (decided on; the target should honour it)."""
SCOPES_KEY = "io.meshgate/scopes"
"""Message metadata: the scopes the sender grants this hop; absent means the previous hop's (or none)."""
SEAL_KEY = "io.meshgate/delegation-seal"
"""Message metadata: the broker's seal over `DELEGATION_KEY`; a delegating agent sends both back unchanged."""
AGENT_KEY = "io.meshgate/agent"
"""Message metadata: the target agent's id, for A2A 0.3 peers, whose requests have no `tenant` field."""


class DelegationInvalid(ValueError):
    """The message's delegation metadata is not a list of `{subject, agent, scopes}` hops."""


def chain_of(metadata: Mapping[str, Any]) -> list[DelegationHop]:
    """The hops a message says it came through.

    Raises:
        DelegationInvalid: the metadata is malformed.
    """
    raw = metadata.get(DELEGATION_KEY, [])
    if not isinstance(raw, list):
        raise DelegationInvalid(f"{DELEGATION_KEY} must be a list of hops")
    hops: list[DelegationHop] = []
    for i, item in enumerate(cast(list[Any], raw)):
        if not isinstance(item, dict):
            raise DelegationInvalid(f"{DELEGATION_KEY}[{i}] must be an object")
        hop = cast(dict[str, Any], item)
        scopes = hop.get("scopes", [])
        if not isinstance(hop.get("subject"), str) or not isinstance(hop.get("agent"), str):
            raise DelegationInvalid(f"{DELEGATION_KEY}[{i}] needs string subject and agent")
        if not isinstance(scopes, list) or not all(isinstance(s, str) for s in cast(list[Any], scopes)):
            raise DelegationInvalid(f"{DELEGATION_KEY}[{i}].scopes must be a list of strings")
        hops.append({"subject": hop["subject"], "agent": hop["agent"], "scopes": list(cast(list[str], scopes))})
    return hops


SEAL_KEY_BYTES = 32
SEAL_SECRET = "a2a_broker.chain_seal_key"
"""The registry secret holding the seal key."""


class ChainSeal:
    """Seals the chains this broker forwards, so that only a chain it issued is taken back."""

    def __init__(self, key: bytes | None = None) -> None:
        """`key`: the HMAC key, at least 32 bytes; None makes a random one, good for this process only.

        Raises:
            ValueError: the key is shorter than 32 bytes.
        """
        if key is not None and len(key) < SEAL_KEY_BYTES:
            raise ValueError(f"a chain seal key needs at least {SEAL_KEY_BYTES} bytes")
        self._key = key or secrets.token_bytes(SEAL_KEY_BYTES)

    def __repr__(self) -> str:
        return "ChainSeal(key=<hidden>)"

    def of(self, chain: list[DelegationHop]) -> str:
        canonical = json.dumps(chain, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        digest = hmac.new(self._key, canonical, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def verifies(self, chain: list[DelegationHop], seal: object) -> bool:
        return isinstance(seal, str) and hmac.compare_digest(seal, self.of(chain))


class SecretStore(Protocol):
    """Where secrets meshgate generates for itself are kept (the registry store satisfies it)."""

    def shared_secret(self, name: str, candidate: bytes) -> bytes: ...


def shared_seal(store: SecretStore) -> ChainSeal:
    """The seal every broker on this registry shares: its key is generated by the first broker that asks and
    stored in the registry, atomically, so replicas starting together agree on it.

    Raises:
        RegistryError: the registry cannot be read or written.
    """
    return ChainSeal(store.shared_secret(SEAL_SECRET, secrets.token_bytes(SEAL_KEY_BYTES)))


def extended_chain(
    metadata: Mapping[str, Any], principal: Principal, agent_id: str, seal: ChainSeal | None = None
) -> list[DelegationHop]:
    """The chain with this call's hop appended: `principal` delegating to `agent_id`.

    With `seal`, a prior chain is taken only when the metadata carries that seal's mark over it.

    Raises:
        DelegationInvalid: the metadata is malformed, or the prior chain is not one the broker sealed.
    """
    chain = chain_of(metadata)
    sealed = bool(chain) or SEAL_KEY in metadata  # a seal beside an emptied chain: hops were dropped
    if seal is not None and sealed and not seal.verifies(chain, metadata.get(SEAL_KEY)):
        raise DelegationInvalid(f"{DELEGATION_KEY} was not issued by this broker, or was altered")
    raw_scopes = metadata.get(SCOPES_KEY)
    if raw_scopes is None:
        scopes = list(chain[-1]["scopes"]) if chain else []
    elif isinstance(raw_scopes, list) and all(isinstance(s, str) for s in cast(list[Any], raw_scopes)):
        scopes = list(cast(list[str], raw_scopes))
    else:
        raise DelegationInvalid(f"{SCOPES_KEY} must be a list of strings")
    return [*chain, {"subject": principal.subject, "agent": agent_id, "scopes": scopes}]


def named_skill(metadata: Mapping[str, Any]) -> str:
    """The skill a message names in its metadata, or ""."""
    named = metadata.get(SKILL_KEY)
    return named if isinstance(named, str) else ""


def requested_skill(metadata: Mapping[str, Any], card_skills: list[str]) -> str:
    """The skill a message asks for: named in its metadata, else the target's only skill, else ""."""
    return named_skill(metadata) or (card_skills[0] if len(card_skills) == 1 else "")


def agent_resource(agent_id: str, organization: str, skill: str) -> ResourceDoc:
    return {"kind": "agent", "id": agent_id, "agent": agent_id, "organization": organization, "skill": skill}


def task_resource(task_id: str, agent_id: str, organization: str, skill: str) -> ResourceDoc:
    return {"kind": "task", "id": task_id, "agent": agent_id, "organization": organization, "skill": skill}


def owner_key(principal: Principal) -> str:
    """One string per principal: how it was authenticated, its organisation and its subject."""
    return f"{principal.issuer}|{principal.tenant}|{principal.subject}"


@dataclass(frozen=True, slots=True)
class TaskEntry:
    owner: str
    agent_id: str
    skill: str


class TaskStore(Protocol):
    """Where task owners are kept (the registry store satisfies it), shared by every broker replica."""

    def add_broker_task(self, task: BrokerTask) -> bool: ...

    def find_broker_task(self, task_id: str) -> BrokerTask | None: ...

    def list_broker_tasks(self, owner: str, limit: int = 1000) -> list[BrokerTask]: ...


class TaskOwners:
    """Which principal created each task relayed through the broker, and on which agent.

    Kept in the registry, so every broker replica on it, and a restarted broker, knows every task. A small
    in-process cache spares the registry a round trip per streamed event and per task call; it is correct
    across replicas because it holds only what the registry holds already and a task's entry never changes
    there (the first owner stays). A task not in the cache is always looked up: another replica may have
    recorded it since.
    """

    def __init__(self, store: TaskStore, *, cache_entries: int = 10_000, max_listed: int = 1000) -> None:
        self._store = store
        self._cache: OrderedDict[str, TaskEntry] = OrderedDict()
        self._cache_max = cache_entries
        self._max_listed = max_listed

    def remember(self, task_id: str, entry: TaskEntry) -> None:
        """Record `entry` for a new task; an existing task keeps its first owner.

        Raises:
            RegistryError: the registry cannot be written.
        """
        if not task_id or task_id in self._cache:
            return
        if self._store.add_broker_task(BrokerTask(task_id, entry.owner, entry.agent_id, entry.skill)):
            self._cached(task_id, entry)
        else:  # recorded before (perhaps by another replica): cache what is stored, not `entry`
            self._lookup(task_id)

    def owned_by(self, owner: str) -> list[tuple[str, TaskEntry]]:
        """The tasks `owner` created, newest first, at most `max_listed` (what ListTasks may show it).

        Raises:
            RegistryError: the registry cannot be read.
        """
        found = self._store.list_broker_tasks(owner, self._max_listed)
        return [(t.task_id, TaskEntry(t.owner, t.agent_id, t.skill)) for t in found]

    def owned(self, task_id: str, owner: str) -> TaskEntry | None:
        """The task's entry when `owner` created it; None when it is unknown or someone else's (alike).

        Raises:
            RegistryError: the registry cannot be read.
        """
        entry = self._lookup(task_id)
        return entry if entry is not None and entry.owner == owner else None

    def _lookup(self, task_id: str) -> TaskEntry | None:
        entry = self._cache.get(task_id)
        if entry is not None:
            self._cache.move_to_end(task_id)
            return entry
        task = self._store.find_broker_task(task_id) if task_id else None
        if task is None:
            return None  # not cached: another replica may record it any moment
        return self._cached(task_id, TaskEntry(task.owner, task.agent_id, task.skill))

    def _cached(self, task_id: str, entry: TaskEntry) -> TaskEntry:
        self._cache[task_id] = entry
        while len(self._cache) > self._cache_max:
            self._cache.popitem(last=False)
        return entry
