"""The registry store protocol: SQLite by default (`sqlite_store.py`), or PostgreSQL (`postgres_store.py`).

Methods are synchronous and short; the gateway calls them at start-up, on catalog refresh and from the
CLI, the broker on the event loop (agent lookups, task ownership). Audit appends go through `AuditLog`
(`audit.py`), which batches them off the event loop.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from registry.models import (
    AgentRecord,
    ApiKey,
    AuditQuery,
    AuditRecord,
    BrokerTask,
    InferenceNode,
    Tenant,
    ToolRecord,
    UpstreamServer,
    UsageQuery,
    UsageRecord,
)


class RegistryStore(Protocol):
    # upstream servers
    def add_server(self, server: UpstreamServer, *, replace: bool = False) -> None:
        """Raises `AlreadyExists` when the name is taken and `replace` is False."""
        ...

    def get_server(self, name: str) -> UpstreamServer:
        """Raises `NotFound`."""
        ...

    def list_servers(self) -> list[UpstreamServer]: ...

    def remove_server(self, name: str) -> None:
        """Removes the server and its tools. Raises `NotFound`."""
        ...

    # tools, recorded per server with the hash of each definition
    def record_tools(self, server: str, tools: Sequence[ToolRecord]) -> list[str]:
        """Replace the server's tool set; returns the names whose definition hash changed.

        The store sets `first_seen` (kept while a definition is unchanged) and `last_seen`; new names
        are not "changed". Raises `NotFound` for an unknown server.
        """
        ...

    def list_tools(self, server: str | None = None) -> list[ToolRecord]: ...

    # tenants and API keys
    def add_tenant(self, tenant: Tenant) -> None:
        """Raises `AlreadyExists`."""
        ...

    def list_tenants(self) -> list[Tenant]: ...

    def add_api_key(self, key: ApiKey) -> None:
        """Raises `AlreadyExists` when the key id is taken."""
        ...

    def find_api_key(self, key_id: str) -> ApiKey | None: ...

    def list_api_keys(self, tenant: str | None = None) -> list[ApiKey]: ...

    def revoke_api_key(self, key_id: str) -> None:
        """Raises `NotFound`."""
        ...

    # A2A agents: cards stored verbatim
    def add_agent(self, record: AgentRecord, *, replace: bool = False) -> None:
        """Raises `AlreadyExists` when the id is taken and `replace` is False."""
        ...

    def get_agent(self, agent_id: str) -> AgentRecord:
        """Raises `NotFound`."""
        ...

    def list_agents(self) -> list[AgentRecord]:
        """Ordered by `agent_id`."""
        ...

    def remove_agent(self, agent_id: str) -> None:
        """Raises `NotFound`."""
        ...

    # A2A broker tasks: who created each task relayed through the broker, shared by every broker replica
    def add_broker_task(self, task: BrokerTask) -> bool:
        """Record a task's owner unless the task is recorded already (its first owner stays); sets
        `created_at`. Returns whether this call recorded it."""
        ...

    def find_broker_task(self, task_id: str) -> BrokerTask | None: ...

    def list_broker_tasks(self, owner: str, limit: int = 1000) -> list[BrokerTask]:
        """The owner's tasks, newest first (by `created_at`, then `task_id`), at most `limit`."""
        ...

    # secrets meshgate generates for itself (the broker's delegation-chain seal key)
    def shared_secret(self, name: str, candidate: bytes) -> bytes:
        """The secret stored under `name`, storing `candidate` there first when there is none: atomically, so
        processes that start together on one registry all get the same secret."""
        ...

    # inference nodes: registered by `meshgate node`, load reported by heartbeat
    def upsert_node(self, node: InferenceNode) -> None:
        """Register (or re-register after a restart) a node; sets `registered_at` and `heartbeat_at`."""
        ...

    def report_load(self, name: str, in_flight: int, queued: int) -> None:
        """Record a node's load and refresh `heartbeat_at`. Raises `NotFound`."""
        ...

    def list_nodes(self, model: str | None = None) -> list[InferenceNode]:
        """Ordered by `name`."""
        ...

    def remove_node(self, name: str) -> None:
        """Raises `NotFound`."""
        ...

    # metering: append-only, like the audit log
    def append_usage(self, records: Iterable[UsageRecord]) -> None: ...

    def query_usage(self, query: UsageQuery) -> list[UsageRecord]:
        """Newest first, at most `query.limit`."""
        ...

    # audit: append-only
    def append_audit(self, records: Iterable[AuditRecord]) -> None: ...

    def query_audit(self, query: AuditQuery) -> list[AuditRecord]:
        """Newest first, at most `query.limit`; `since` is any ISO-8601 time (made canonical, then compared)."""
        ...

    def close(self) -> None: ...
