"""The registry on SQLite (stdlib `sqlite3`): the default store, one file in WAL mode.

The schema is migrated with `PRAGMA user_version`; structured fields are JSON text. The audit and
usage tables are append-only, enforced by triggers in the database rather than by convention in this code.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Generator, Iterable, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import LiteralString

from meshgate.errors import AlreadyExists, NotFound, RegistryError
from registry import rows
from registry.clock import utc_now
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

# One script per schema version; `user_version` is the number applied so far. Append, never edit.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE servers (
        name TEXT PRIMARY KEY,
        transport TEXT NOT NULL,
        command TEXT NOT NULL,
        url TEXT NOT NULL,
        env TEXT NOT NULL,
        headers TEXT NOT NULL,
        launch TEXT NOT NULL,
        cwd TEXT NOT NULL,
        prefix TEXT,
        timeout_s REAL NOT NULL,
        enabled INTEGER NOT NULL
    );
    CREATE TABLE tools (
        server TEXT NOT NULL REFERENCES servers(name) ON DELETE CASCADE ON UPDATE CASCADE,
        name TEXT NOT NULL,
        description TEXT NOT NULL,
        input_schema TEXT NOT NULL,
        output_schema TEXT,
        definition_hash TEXT NOT NULL,
        first_seen TEXT NOT NULL,
        last_seen TEXT NOT NULL,
        PRIMARY KEY (server, name)
    );
    CREATE TABLE tenants (
        name TEXT PRIMARY KEY,
        display_name TEXT NOT NULL
    );
    CREATE TABLE api_keys (
        key_id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        subject TEXT NOT NULL,
        roles TEXT NOT NULL,
        secret_hash TEXT NOT NULL,
        created_at TEXT NOT NULL,
        revoked INTEGER NOT NULL
    );
    CREATE INDEX api_keys_tenant ON api_keys(tenant);
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        decision_id TEXT NOT NULL,
        time TEXT NOT NULL,
        subject TEXT NOT NULL,
        tenant TEXT NOT NULL,
        action TEXT NOT NULL,
        resource TEXT NOT NULL,
        allow INTEGER NOT NULL,
        reasons TEXT NOT NULL,
        latency_us INTEGER NOT NULL,
        engine TEXT NOT NULL,
        bundle_revision TEXT NOT NULL,
        trace_id TEXT NOT NULL,
        arguments TEXT,
        outcome TEXT NOT NULL
    );
    CREATE INDEX audit_time ON audit(time);
    CREATE INDEX audit_subject_time ON audit(subject, time);
    CREATE INDEX audit_tenant_time ON audit(tenant, time);
    CREATE INDEX audit_decision_id ON audit(decision_id);
    CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
    CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
    """,
    # 2: the decision's input document (JSON), for `meshgate policy explain|replay`; NULL on older records.
    """
    ALTER TABLE audit ADD COLUMN input TEXT;
    """,
    # 3: A2A agents registered with the broker; the card is TEXT so it comes back byte-for-byte.
    """
    CREATE TABLE agents (
        agent_id TEXT PRIMARY KEY,
        organization TEXT NOT NULL,
        card_json TEXT NOT NULL,
        card_url TEXT NOT NULL,
        signed INTEGER NOT NULL,
        registered_at TEXT NOT NULL
    );
    CREATE INDEX agents_organization ON agents(organization);
    """,
    # 4: inference nodes with their last reported load, and the append-only usage (metering) log.
    """
    CREATE TABLE inference_nodes (
        name TEXT PRIMARY KEY,
        model TEXT NOT NULL,
        engine TEXT NOT NULL,
        address TEXT NOT NULL,
        capacity INTEGER NOT NULL,
        in_flight INTEGER NOT NULL,
        queued INTEGER NOT NULL,
        registered_at TEXT NOT NULL,
        heartbeat_at TEXT NOT NULL
    );
    CREATE INDEX inference_nodes_model ON inference_nodes(model);
    CREATE TABLE usage (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        time TEXT NOT NULL,
        subject TEXT NOT NULL,
        tenant TEXT NOT NULL,
        model TEXT NOT NULL,
        node TEXT NOT NULL,
        prompt_tokens INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL,
        via TEXT NOT NULL,
        decision_id TEXT NOT NULL,
        trace_id TEXT NOT NULL
    );
    CREATE INDEX usage_time ON usage(time);
    CREATE INDEX usage_tenant_time ON usage(tenant, time);
    CREATE TRIGGER usage_no_update BEFORE UPDATE ON usage
    BEGIN SELECT RAISE(ABORT, 'usage log is append-only'); END;
    CREATE TRIGGER usage_no_delete BEFORE DELETE ON usage
    BEGIN SELECT RAISE(ABORT, 'usage log is append-only'); END;
    """,
    # 5: A2A broker state every broker replica on this registry shares: who created each relayed task (for
    # ListTasks, newest first per owner), and secrets generated once (the delegation-chain seal key).
    """
    CREATE TABLE broker_tasks (
        task_id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        agent_id TEXT NOT NULL,
        skill TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX broker_tasks_owner_created ON broker_tasks(owner, created_at);
    CREATE TABLE secrets (
        name TEXT PRIMARY KEY,
        value BLOB NOT NULL,
        created_at TEXT NOT NULL
    );
    """,
)


def _columns(names: Sequence[LiteralString]) -> LiteralString:
    return ", ".join(names)


def _marks(names: Sequence[LiteralString]) -> LiteralString:
    return ", ".join("?" for _ in names)


class SqliteStore:
    """`RegistryStore` on one SQLite file; safe to share between the event loop and the audit writer."""

    def __init__(self, path: str | Path) -> None:
        """Open (creating the file and its directory if needed) and migrate.

        Raises:
            RegistryError: the file cannot be opened, or it was written by a newer meshgate.
        """
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # One connection serves the event-loop thread and the audit writer thread.
        # check_same_thread=False only lifts sqlite3's ownership check; the connection still has a
        # single transaction state, so the lock keeps each operation's transaction whole.
        self._lock = threading.Lock()
        try:
            self._conn = sqlite3.connect(self.path, timeout=5.0, isolation_level=None, check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL is durable in WAL mode except for the last commits on power loss, and avoids an fsync per write.
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.Error as exc:
            raise RegistryError(f"cannot open the SQLite registry at {self.path}: {exc}") from exc

    def _migrate(self) -> None:
        with self._write() as conn:
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            if version > len(MIGRATIONS):
                raise RegistryError(f"registry schema version {version} is newer than this meshgate supports")
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                # executescript() would COMMIT first; run the statements one by one inside our transaction.
                for statement in _statements(script):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number}")

    @contextmanager
    def _write(self) -> Generator[sqlite3.Connection, None, None]:
        with self._lock:
            try:
                # IMMEDIATE takes the write lock up front, so read-then-write steps cannot be interleaved
                # by another process (the CLI) between them.
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self._conn
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise RegistryError(f"registry write failed: {exc}") from exc

    @contextmanager
    def _read(self) -> Generator[sqlite3.Connection, None, None]:
        with self._lock:
            try:
                yield self._conn
            except sqlite3.Error as exc:
                raise RegistryError(f"registry read failed: {exc}") from exc

    # upstream servers
    def add_server(self, server: UpstreamServer, *, replace: bool = False) -> None:
        """Raises `AlreadyExists` when the name is taken and `replace` is False."""
        names = rows.SERVER_COLUMNS
        sql = f"INSERT INTO servers ({_columns(names)}) VALUES ({_marks(names)})"
        if replace:
            # An upsert, not INSERT OR REPLACE: a REPLACE deletes the row first and would cascade to its tools.
            updates = ", ".join(f"{c} = excluded.{c}" for c in names[1:])
            sql += f" ON CONFLICT (name) DO UPDATE SET {updates}"
        with self._write() as conn:
            try:
                conn.execute(sql, rows.server_row(server))
            except sqlite3.IntegrityError as exc:
                raise AlreadyExists(f"server {server.name!r} already exists", name=server.name) from exc

    def get_server(self, name: str) -> UpstreamServer:
        """Raises `NotFound`."""
        with self._read() as conn:
            row = conn.execute(
                f"SELECT {_columns(rows.SERVER_COLUMNS)} FROM servers WHERE name = ?", (name,)
            ).fetchone()
        if row is None:
            raise NotFound(f"no server named {name!r}", name=name)
        return rows.server_from_row(row)

    def list_servers(self) -> list[UpstreamServer]:
        with self._read() as conn:
            found = conn.execute(f"SELECT {_columns(rows.SERVER_COLUMNS)} FROM servers ORDER BY name").fetchall()
        return [rows.server_from_row(r) for r in found]

    def remove_server(self, name: str) -> None:
        """Removes the server and its tools (by cascade). Raises `NotFound`."""
        with self._write() as conn:
            if conn.execute("DELETE FROM servers WHERE name = ?", (name,)).rowcount == 0:
                raise NotFound(f"no server named {name!r}", name=name)

    # tools
    def record_tools(self, server: str, tools: Sequence[ToolRecord]) -> list[str]:
        """Replace the server's tool set; returns the names whose definition hash changed.

        Raises:
            NotFound: no such server.
        """
        now = utc_now()
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM servers WHERE name = ?", (server,)).fetchone() is None:
                raise NotFound(f"no server named {server!r}", name=server)
            stored = conn.execute("SELECT name, definition_hash, first_seen FROM tools WHERE server = ?", (server,))
            previous = {name: (digest, first_seen) for name, digest, first_seen in stored.fetchall()}
            records, changed = rows.merge_tools(previous, server, tools, now)
            conn.execute("DELETE FROM tools WHERE server = ?", (server,))
            names = rows.TOOL_COLUMNS
            conn.executemany(
                f"INSERT INTO tools ({_columns(names)}) VALUES ({_marks(names)})", [rows.tool_row(r) for r in records]
            )
        return changed

    def list_tools(self, server: str | None = None) -> list[ToolRecord]:
        sql = f"SELECT {_columns(rows.TOOL_COLUMNS)} FROM tools"
        params: tuple[str, ...] = ()
        if server is not None:
            sql, params = sql + " WHERE server = ?", (server,)
        with self._read() as conn:
            found = conn.execute(sql + " ORDER BY server, name", params).fetchall()
        return [rows.tool_from_row(r) for r in found]

    # tenants and API keys
    def add_tenant(self, tenant: Tenant) -> None:
        """Raises `AlreadyExists`."""
        with self._write() as conn:
            try:
                conn.execute(
                    "INSERT INTO tenants (name, display_name) VALUES (?, ?)", (tenant.name, tenant.display_name)
                )
            except sqlite3.IntegrityError as exc:
                raise AlreadyExists(f"tenant {tenant.name!r} already exists", name=tenant.name) from exc

    def list_tenants(self) -> list[Tenant]:
        with self._read() as conn:
            found = conn.execute("SELECT name, display_name FROM tenants ORDER BY name").fetchall()
        return [rows.tenant_from_row(r) for r in found]

    def add_api_key(self, key: ApiKey) -> None:
        """Raises `AlreadyExists` when the key id is taken."""
        names = rows.API_KEY_COLUMNS
        with self._write() as conn:
            try:
                conn.execute(
                    f"INSERT INTO api_keys ({_columns(names)}) VALUES ({_marks(names)})", rows.api_key_row(key)
                )
            except sqlite3.IntegrityError as exc:
                raise AlreadyExists(f"API key {key.key_id!r} already exists", key_id=key.key_id) from exc

    def find_api_key(self, key_id: str) -> ApiKey | None:
        with self._read() as conn:
            sql = f"SELECT {_columns(rows.API_KEY_COLUMNS)} FROM api_keys WHERE key_id = ?"
            row = conn.execute(sql, (key_id,)).fetchone()
        return None if row is None else rows.api_key_from_row(row)

    def list_api_keys(self, tenant: str | None = None) -> list[ApiKey]:
        sql = f"SELECT {_columns(rows.API_KEY_COLUMNS)} FROM api_keys"
        params: tuple[str, ...] = ()
        if tenant is not None:
            sql, params = sql + " WHERE tenant = ?", (tenant,)
        with self._read() as conn:
            found = conn.execute(sql + " ORDER BY tenant, created_at, key_id", params).fetchall()
        return [rows.api_key_from_row(r) for r in found]

    def revoke_api_key(self, key_id: str) -> None:
        """Raises `NotFound`. Revoking twice is not an error."""
        with self._write() as conn:
            if conn.execute("UPDATE api_keys SET revoked = 1 WHERE key_id = ?", (key_id,)).rowcount == 0:
                raise NotFound(f"no API key {key_id!r}", key_id=key_id)

    # A2A agents
    def add_agent(self, record: AgentRecord, *, replace: bool = False) -> None:
        """Raises `AlreadyExists` when the id is taken and `replace` is False."""
        names = rows.AGENT_COLUMNS
        sql = f"INSERT INTO agents ({_columns(names)}) VALUES ({_marks(names)})"
        if replace:
            sql += " ON CONFLICT (agent_id) DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in names[1:])
        with self._write() as conn:
            try:
                conn.execute(sql, rows.agent_row(record))
            except sqlite3.IntegrityError as exc:
                raise AlreadyExists(f"agent {record.agent_id!r} already exists", name=record.agent_id) from exc

    def get_agent(self, agent_id: str) -> AgentRecord:
        """Raises `NotFound`."""
        with self._read() as conn:
            sql = f"SELECT {_columns(rows.AGENT_COLUMNS)} FROM agents WHERE agent_id = ?"
            row = conn.execute(sql, (agent_id,)).fetchone()
        if row is None:
            raise NotFound(f"no agent {agent_id!r}", name=agent_id)
        return rows.agent_from_row(row)

    def list_agents(self) -> list[AgentRecord]:
        with self._read() as conn:
            found = conn.execute(f"SELECT {_columns(rows.AGENT_COLUMNS)} FROM agents ORDER BY agent_id").fetchall()
        return [rows.agent_from_row(r) for r in found]

    def remove_agent(self, agent_id: str) -> None:
        """Raises `NotFound`."""
        with self._write() as conn:
            if conn.execute("DELETE FROM agents WHERE agent_id = ?", (agent_id,)).rowcount == 0:
                raise NotFound(f"no agent {agent_id!r}", name=agent_id)

    # A2A broker tasks
    def add_broker_task(self, task: BrokerTask) -> bool:
        """Record a task's owner unless the task is recorded already; sets `created_at`."""
        names = rows.BROKER_TASK_COLUMNS
        sql = f"INSERT INTO broker_tasks ({_columns(names)}) VALUES ({_marks(names)}) ON CONFLICT (task_id) DO NOTHING"
        with self._write() as conn:
            return conn.execute(sql, rows.broker_task_row(replace(task, created_at=utc_now()))).rowcount == 1

    def find_broker_task(self, task_id: str) -> BrokerTask | None:
        with self._read() as conn:
            sql = f"SELECT {_columns(rows.BROKER_TASK_COLUMNS)} FROM broker_tasks WHERE task_id = ?"
            row = conn.execute(sql, (task_id,)).fetchone()
        return None if row is None else rows.broker_task_from_row(row)

    def list_broker_tasks(self, owner: str, limit: int = 1000) -> list[BrokerTask]:
        """The owner's tasks, newest first, at most `limit`."""
        sql = f"SELECT {_columns(rows.BROKER_TASK_COLUMNS)} FROM broker_tasks WHERE owner = ?"
        with self._read() as conn:
            found = conn.execute(sql + " ORDER BY created_at DESC, task_id DESC LIMIT ?", (owner, max(limit, 0)))
            return [rows.broker_task_from_row(r) for r in found.fetchall()]

    # secrets
    def shared_secret(self, name: str, candidate: bytes) -> bytes:
        """The secret stored under `name`, storing `candidate` first when there is none."""
        insert = "INSERT INTO secrets (name, value, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING"
        with self._write() as conn:  # BEGIN IMMEDIATE: another process's first use cannot interleave
            conn.execute(insert, (name, candidate, utc_now()))
            (value,) = conn.execute("SELECT value FROM secrets WHERE name = ?", (name,)).fetchone()
        return bytes(value)

    # inference nodes
    def upsert_node(self, node: InferenceNode) -> None:
        """Register (or re-register after a restart) a node; sets `registered_at` and `heartbeat_at`."""
        now = utc_now()
        names = rows.NODE_COLUMNS
        record = replace(node, registered_at=now, heartbeat_at=now)
        updates = ", ".join(f"{c} = excluded.{c}" for c in names[1:])
        sql = f"INSERT INTO inference_nodes ({_columns(names)}) VALUES ({_marks(names)})"
        with self._write() as conn:
            conn.execute(sql + f" ON CONFLICT (name) DO UPDATE SET {updates}", rows.node_row(record))

    def report_load(self, name: str, in_flight: int, queued: int) -> None:
        """Record a node's load and refresh `heartbeat_at`. Raises `NotFound`."""
        sql = "UPDATE inference_nodes SET in_flight = ?, queued = ?, heartbeat_at = ? WHERE name = ?"
        with self._write() as conn:
            if conn.execute(sql, (in_flight, queued, utc_now(), name)).rowcount == 0:
                raise NotFound(f"no inference node {name!r}", name=name)

    def list_nodes(self, model: str | None = None) -> list[InferenceNode]:
        sql = f"SELECT {_columns(rows.NODE_COLUMNS)} FROM inference_nodes"
        params: tuple[str, ...] = ()
        if model is not None:
            sql, params = sql + " WHERE model = ?", (model,)
        with self._read() as conn:
            found = conn.execute(sql + " ORDER BY name", params).fetchall()
        return [rows.node_from_row(r) for r in found]

    def remove_node(self, name: str) -> None:
        """Raises `NotFound`."""
        with self._write() as conn:
            if conn.execute("DELETE FROM inference_nodes WHERE name = ?", (name,)).rowcount == 0:
                raise NotFound(f"no inference node {name!r}", name=name)

    # metering
    def append_usage(self, records: Iterable[UsageRecord]) -> None:
        names = rows.USAGE_COLUMNS
        batch = [rows.usage_row(r) for r in records]
        if not batch:
            return
        with self._write() as conn:
            conn.executemany(f"INSERT INTO usage ({_columns(names)}) VALUES ({_marks(names)})", batch)

    def query_usage(self, query: UsageQuery) -> list[UsageRecord]:
        """Newest first (by time, then by insertion order), at most `query.limit` records."""
        filters = rows.usage_filters(query)
        where = " AND ".join(f"{column} {op} ?" for column, op, _ in filters) or "1"
        sql = f"SELECT {_columns(rows.USAGE_COLUMNS)} FROM usage WHERE {where} ORDER BY time DESC, id DESC LIMIT ?"
        with self._read() as conn:
            found = conn.execute(sql, [value for _, _, value in filters] + [max(query.limit, 0)]).fetchall()
        return [rows.usage_from_row(r) for r in found]

    # audit
    def append_audit(self, records: Iterable[AuditRecord]) -> None:
        names = rows.AUDIT_COLUMNS
        batch = [rows.audit_row(r) for r in records]
        if not batch:
            return
        with self._write() as conn:
            conn.executemany(f"INSERT INTO audit ({_columns(names)}) VALUES ({_marks(names)})", batch)

    def query_audit(self, query: AuditQuery) -> list[AuditRecord]:
        """Newest first (by time, then by insertion order), at most `query.limit` records."""
        filters = rows.audit_filters(query)
        where = " AND ".join(f"{column} {op} ?" for column, op, _ in filters) or "1"
        sql = f"SELECT {_columns(rows.AUDIT_COLUMNS)} FROM audit WHERE {where} ORDER BY time DESC, id DESC LIMIT ?"
        with self._read() as conn:
            found = conn.execute(sql, [value for _, _, value in filters] + [max(query.limit, 0)]).fetchall()
        return [rows.audit_from_row(r) for r in found]

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _statements(script: str) -> list[str]:
    """Split a migration into statements, keeping trigger bodies (`BEGIN ... END;`) whole."""
    statements: list[str] = []
    current = ""
    for line in script.strip().splitlines():
        current += line + "\n"
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    if current.strip():
        statements.append(current.strip())
    return statements
