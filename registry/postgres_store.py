"""The registry on PostgreSQL (psycopg 3, the `postgres` extra, imported lazily here and nowhere else).

Same tables and semantics as `sqlite_store.py`: JSON columns, times as ISO-8601 text, and append-only
audit and usage tables enforced by trigger functions. Tables live in the connection's search_path.
"""

from __future__ import annotations

import threading
from collections.abc import Generator, Iterable, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, LiteralString

from meshgate.errors import AlreadyExists, MissingDependency, NotFound, RegistryError
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

if TYPE_CHECKING:
    import psycopg

# Serialises concurrent migrations from several processes (gateway and CLI starting together).
_MIGRATION_LOCK = 0x6D657368  # "mesh"

# One script per schema version, applied in order and recorded in meshgate_schema. Append, never edit.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE servers (
        name TEXT PRIMARY KEY,
        transport TEXT NOT NULL,
        command JSON NOT NULL,
        url TEXT NOT NULL,
        env JSON NOT NULL,
        headers JSON NOT NULL,
        launch JSON NOT NULL,
        cwd TEXT NOT NULL,
        prefix TEXT,
        timeout_s DOUBLE PRECISION NOT NULL,
        enabled BOOLEAN NOT NULL
    );
    CREATE TABLE tools (
        server TEXT NOT NULL REFERENCES servers(name) ON DELETE CASCADE ON UPDATE CASCADE,
        name TEXT NOT NULL,
        description TEXT NOT NULL,
        input_schema JSON NOT NULL,
        output_schema JSON,
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
        roles JSON NOT NULL,
        secret_hash TEXT NOT NULL,
        created_at TEXT NOT NULL,
        revoked BOOLEAN NOT NULL
    );
    CREATE INDEX api_keys_tenant ON api_keys(tenant);
    CREATE TABLE audit (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        decision_id TEXT NOT NULL,
        time TEXT COLLATE "C" NOT NULL,
        subject TEXT NOT NULL,
        tenant TEXT NOT NULL,
        action TEXT NOT NULL,
        resource TEXT NOT NULL,
        allow BOOLEAN NOT NULL,
        reasons JSON NOT NULL,
        latency_us BIGINT NOT NULL,
        engine TEXT NOT NULL,
        bundle_revision TEXT NOT NULL,
        trace_id TEXT NOT NULL,
        arguments JSON,
        outcome TEXT NOT NULL
    );
    CREATE INDEX audit_time ON audit(time);
    CREATE INDEX audit_subject_time ON audit(subject, time);
    CREATE INDEX audit_tenant_time ON audit(tenant, time);
    CREATE INDEX audit_decision_id ON audit(decision_id);
    CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'audit log is append-only' USING ERRCODE = 'insufficient_privilege';
    END
    $$;
    CREATE TRIGGER audit_no_change BEFORE UPDATE OR DELETE ON audit
        FOR EACH ROW EXECUTE FUNCTION audit_append_only();
    CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
        FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
    """,
    # 2: the decision's input document, for `meshgate policy explain|replay`; NULL on older records.
    """
    ALTER TABLE audit ADD COLUMN input JSON;
    """,
    # 3: A2A agents registered with the broker; the card is TEXT (not JSON) so it comes back byte-for-byte.
    """
    CREATE TABLE agents (
        agent_id TEXT PRIMARY KEY,
        organization TEXT NOT NULL,
        card_json TEXT NOT NULL,
        card_url TEXT NOT NULL,
        signed BOOLEAN NOT NULL,
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
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        time TEXT COLLATE "C" NOT NULL,
        subject TEXT NOT NULL,
        tenant TEXT NOT NULL,
        model TEXT NOT NULL,
        node TEXT NOT NULL,
        prompt_tokens BIGINT NOT NULL,
        completion_tokens BIGINT NOT NULL,
        via TEXT NOT NULL,
        decision_id TEXT NOT NULL,
        trace_id TEXT NOT NULL
    );
    CREATE INDEX usage_time ON usage(time);
    CREATE INDEX usage_tenant_time ON usage(tenant, time);
    CREATE FUNCTION usage_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'usage log is append-only' USING ERRCODE = 'insufficient_privilege';
    END
    $$;
    CREATE TRIGGER usage_no_change BEFORE UPDATE OR DELETE ON usage
        FOR EACH ROW EXECUTE FUNCTION usage_append_only();
    CREATE TRIGGER usage_no_truncate BEFORE TRUNCATE ON usage
        FOR EACH STATEMENT EXECUTE FUNCTION usage_append_only();
    """,
    # 5: A2A broker state every broker replica on this registry shares: who created each relayed task (for
    # ListTasks, newest first per owner), and secrets generated once (the delegation-chain seal key).
    """
    CREATE TABLE broker_tasks (
        task_id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        agent_id TEXT NOT NULL,
        skill TEXT NOT NULL,
        created_at TEXT COLLATE "C" NOT NULL
    );
    CREATE INDEX broker_tasks_owner_created ON broker_tasks(owner, created_at);
    CREATE TABLE secrets (
        name TEXT PRIMARY KEY,
        value BYTEA NOT NULL,
        created_at TEXT NOT NULL
    );
    """,
)


def _columns(names: Sequence[LiteralString]) -> LiteralString:
    return ", ".join(names)


def _marks(names: Sequence[LiteralString]) -> LiteralString:
    return ", ".join("%s" for _ in names)


class PostgresStore:
    """`RegistryStore` on PostgreSQL through one psycopg connection, reopened if it breaks."""

    def __init__(self, conninfo: str) -> None:
        """Connect and migrate. `conninfo` is a libpq URL or key=value string; to keep the tables in their
        own schema, pass `options=-csearch_path=<schema>` (URL: `?options=-csearch_path%3D<schema>`).

        Raises:
            MissingDependency: psycopg is not installed (the `postgres` extra).
            RegistryError: the server cannot be reached, or its schema is newer than this meshgate.
        """
        try:
            import psycopg
        except ImportError as exc:
            raise MissingDependency("psycopg", "postgres") from exc
        self._psycopg = psycopg
        self._conninfo = conninfo
        # The event loop and the audit writer thread share the connection; the lock keeps each
        # operation's transaction whole (psycopg would serialise statements, not transactions).
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None
        with self._transaction() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            conn.execute("CREATE TABLE IF NOT EXISTS meshgate_schema (version INTEGER NOT NULL)")
            (current,) = conn.execute("SELECT max(version) FROM meshgate_schema").fetchone() or (None,)
            version = current if isinstance(current, int) else 0
            if version > len(MIGRATIONS):
                raise RegistryError(f"registry schema version {version} is newer than this meshgate supports")
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                conn.execute(script.encode())  # bytes: run as one multi-statement script, no parameters
                conn.execute("INSERT INTO meshgate_schema (version) VALUES (%s)", (number,))

    def _connection(self) -> psycopg.Connection[tuple[object, ...]]:
        if self._conn is None or self._conn.broken:
            self._conn = self._psycopg.connect(self._conninfo, autocommit=True, connect_timeout=10)
        return self._conn

    @contextmanager
    def _transaction(self) -> Generator[psycopg.Connection[tuple[object, ...]], None, None]:
        with self._lock:
            try:
                conn = self._connection()
                with conn.transaction():
                    yield conn
            except self._psycopg.Error as exc:
                raise RegistryError(f"registry operation failed: {type(exc).__name__}: {exc}") from exc

    # upstream servers
    def add_server(self, server: UpstreamServer, *, replace: bool = False) -> None:
        """Raises `AlreadyExists` when the name is taken and `replace` is False."""
        names = rows.SERVER_COLUMNS
        sql = f"INSERT INTO servers ({_columns(names)}) VALUES ({_marks(names)}) ON CONFLICT (name) DO "
        if replace:
            sql += "UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in names[1:])
        else:
            sql += "NOTHING"
        with self._transaction() as conn:
            if conn.execute(sql, rows.server_row(server)).rowcount == 0:
                raise AlreadyExists(f"server {server.name!r} already exists", name=server.name)

    def get_server(self, name: str) -> UpstreamServer:
        """Raises `NotFound`."""
        with self._transaction() as conn:
            sql = f"SELECT {_columns(rows.SERVER_COLUMNS)} FROM servers WHERE name = %s"
            row = conn.execute(sql, (name,)).fetchone()
        if row is None:
            raise NotFound(f"no server named {name!r}", name=name)
        return rows.server_from_row(row)

    def list_servers(self) -> list[UpstreamServer]:
        with self._transaction() as conn:
            found = conn.execute(f"SELECT {_columns(rows.SERVER_COLUMNS)} FROM servers ORDER BY name").fetchall()
        return [rows.server_from_row(r) for r in found]

    def remove_server(self, name: str) -> None:
        """Removes the server and its tools (by cascade). Raises `NotFound`."""
        with self._transaction() as conn:
            if conn.execute("DELETE FROM servers WHERE name = %s", (name,)).rowcount == 0:
                raise NotFound(f"no server named {name!r}", name=name)

    # tools
    def record_tools(self, server: str, tools: Sequence[ToolRecord]) -> list[str]:
        """Replace the server's tool set; returns the names whose definition hash changed.

        Raises:
            NotFound: no such server.
        """
        now = utc_now()
        with self._transaction() as conn:
            # FOR UPDATE on the server row serialises concurrent refreshes of the same server.
            if conn.execute("SELECT 1 FROM servers WHERE name = %s FOR UPDATE", (server,)).fetchone() is None:
                raise NotFound(f"no server named {server!r}", name=server)
            stored = conn.execute("SELECT name, definition_hash, first_seen FROM tools WHERE server = %s", (server,))
            previous = {str(n): (str(h), str(f)) for n, h, f in stored.fetchall()}
            records, changed = rows.merge_tools(previous, server, tools, now)
            conn.execute("DELETE FROM tools WHERE server = %s", (server,))
            names = rows.TOOL_COLUMNS
            with conn.cursor() as cur:
                sql = f"INSERT INTO tools ({_columns(names)}) VALUES ({_marks(names)})"
                cur.executemany(sql, [rows.tool_row(r) for r in records])
        return changed

    def list_tools(self, server: str | None = None) -> list[ToolRecord]:
        sql = f"SELECT {_columns(rows.TOOL_COLUMNS)} FROM tools"
        params: tuple[str, ...] = ()
        if server is not None:
            sql, params = sql + " WHERE server = %s", (server,)
        with self._transaction() as conn:
            found = conn.execute(sql + " ORDER BY server, name", params).fetchall()
        return [rows.tool_from_row(r) for r in found]

    # tenants and API keys
    def add_tenant(self, tenant: Tenant) -> None:
        """Raises `AlreadyExists`."""
        sql = "INSERT INTO tenants (name, display_name) VALUES (%s, %s) ON CONFLICT (name) DO NOTHING"
        with self._transaction() as conn:
            if conn.execute(sql, (tenant.name, tenant.display_name)).rowcount == 0:
                raise AlreadyExists(f"tenant {tenant.name!r} already exists", name=tenant.name)

    def list_tenants(self) -> list[Tenant]:
        with self._transaction() as conn:
            found = conn.execute("SELECT name, display_name FROM tenants ORDER BY name").fetchall()
        return [rows.tenant_from_row(r) for r in found]

    def add_api_key(self, key: ApiKey) -> None:
        """Raises `AlreadyExists` when the key id is taken."""
        names = rows.API_KEY_COLUMNS
        sql = f"INSERT INTO api_keys ({_columns(names)}) VALUES ({_marks(names)}) ON CONFLICT (key_id) DO NOTHING"
        with self._transaction() as conn:
            if conn.execute(sql, rows.api_key_row(key)).rowcount == 0:
                raise AlreadyExists(f"API key {key.key_id!r} already exists", key_id=key.key_id)

    def find_api_key(self, key_id: str) -> ApiKey | None:
        with self._transaction() as conn:
            sql = f"SELECT {_columns(rows.API_KEY_COLUMNS)} FROM api_keys WHERE key_id = %s"
            row = conn.execute(sql, (key_id,)).fetchone()
        return None if row is None else rows.api_key_from_row(row)

    def list_api_keys(self, tenant: str | None = None) -> list[ApiKey]:
        sql = f"SELECT {_columns(rows.API_KEY_COLUMNS)} FROM api_keys"
        params: tuple[str, ...] = ()
        if tenant is not None:
            sql, params = sql + " WHERE tenant = %s", (tenant,)
        with self._transaction() as conn:
            found = conn.execute(sql + " ORDER BY tenant, created_at, key_id", params).fetchall()
        return [rows.api_key_from_row(r) for r in found]

    def revoke_api_key(self, key_id: str) -> None:
        """Raises `NotFound`. Revoking twice is not an error."""
        with self._transaction() as conn:
            if conn.execute("UPDATE api_keys SET revoked = TRUE WHERE key_id = %s", (key_id,)).rowcount == 0:
                raise NotFound(f"no API key {key_id!r}", key_id=key_id)

    # A2A agents
    def add_agent(self, record: AgentRecord, *, replace: bool = False) -> None:
        """Raises `AlreadyExists` when the id is taken and `replace` is False."""
        names = rows.AGENT_COLUMNS
        sql = f"INSERT INTO agents ({_columns(names)}) VALUES ({_marks(names)}) ON CONFLICT (agent_id) DO "
        if replace:
            sql += "UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in names[1:])
        else:
            sql += "NOTHING"
        with self._transaction() as conn:
            if conn.execute(sql, rows.agent_row(record)).rowcount == 0:
                raise AlreadyExists(f"agent {record.agent_id!r} already exists", name=record.agent_id)

    def get_agent(self, agent_id: str) -> AgentRecord:
        """Raises `NotFound`."""
        with self._transaction() as conn:
            sql = f"SELECT {_columns(rows.AGENT_COLUMNS)} FROM agents WHERE agent_id = %s"
            row = conn.execute(sql, (agent_id,)).fetchone()
        if row is None:
            raise NotFound(f"no agent {agent_id!r}", name=agent_id)
        return rows.agent_from_row(row)

    def list_agents(self) -> list[AgentRecord]:
        with self._transaction() as conn:
            found = conn.execute(f"SELECT {_columns(rows.AGENT_COLUMNS)} FROM agents ORDER BY agent_id").fetchall()
        return [rows.agent_from_row(r) for r in found]

    def remove_agent(self, agent_id: str) -> None:
        """Raises `NotFound`."""
        with self._transaction() as conn:
            if conn.execute("DELETE FROM agents WHERE agent_id = %s", (agent_id,)).rowcount == 0:
                raise NotFound(f"no agent {agent_id!r}", name=agent_id)

    # A2A broker tasks
    def add_broker_task(self, task: BrokerTask) -> bool:
        """Record a task's owner unless the task is recorded already; sets `created_at`."""
        names = rows.BROKER_TASK_COLUMNS
        sql = f"INSERT INTO broker_tasks ({_columns(names)}) VALUES ({_marks(names)}) ON CONFLICT (task_id) DO NOTHING"
        with self._transaction() as conn:
            return conn.execute(sql, rows.broker_task_row(replace(task, created_at=utc_now()))).rowcount == 1

    def find_broker_task(self, task_id: str) -> BrokerTask | None:
        with self._transaction() as conn:
            sql = f"SELECT {_columns(rows.BROKER_TASK_COLUMNS)} FROM broker_tasks WHERE task_id = %s"
            row = conn.execute(sql, (task_id,)).fetchone()
        return None if row is None else rows.broker_task_from_row(row)

    def list_broker_tasks(self, owner: str, limit: int = 1000) -> list[BrokerTask]:
        """The owner's tasks, newest first, at most `limit`."""
        sql = f"SELECT {_columns(rows.BROKER_TASK_COLUMNS)} FROM broker_tasks WHERE owner = %s"
        with self._transaction() as conn:
            found = conn.execute(sql + " ORDER BY created_at DESC, task_id DESC LIMIT %s", (owner, max(limit, 0)))
            return [rows.broker_task_from_row(r) for r in found.fetchall()]

    # secrets
    def shared_secret(self, name: str, candidate: bytes) -> bytes:
        """The secret stored under `name`, storing `candidate` first when there is none."""
        insert = "INSERT INTO secrets (name, value, created_at) VALUES (%s, %s, %s) ON CONFLICT (name) DO NOTHING"
        with self._transaction() as conn:
            # Read committed: when another process's insert won, ours waited for its commit and did nothing,
            # and this SELECT (a new snapshot) sees that row.
            conn.execute(insert, (name, candidate, utc_now()))
            row = conn.execute("SELECT value FROM secrets WHERE name = %s", (name,)).fetchone()
        value = row[0] if row is not None else None
        if not isinstance(value, bytes):  # psycopg loads bytea as bytes
            raise RegistryError(f"secret {name!r} could not be read back")
        return value

    # inference nodes
    def upsert_node(self, node: InferenceNode) -> None:
        """Register (or re-register after a restart) a node; sets `registered_at` and `heartbeat_at`."""
        now = utc_now()
        names = rows.NODE_COLUMNS
        record = replace(node, registered_at=now, heartbeat_at=now)
        sql = f"INSERT INTO inference_nodes ({_columns(names)}) VALUES ({_marks(names)}) ON CONFLICT (name) DO "
        sql += "UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in names[1:])
        with self._transaction() as conn:
            conn.execute(sql, rows.node_row(record))

    def report_load(self, name: str, in_flight: int, queued: int) -> None:
        """Record a node's load and refresh `heartbeat_at`. Raises `NotFound`."""
        sql = "UPDATE inference_nodes SET in_flight = %s, queued = %s, heartbeat_at = %s WHERE name = %s"
        with self._transaction() as conn:
            if conn.execute(sql, (in_flight, queued, utc_now(), name)).rowcount == 0:
                raise NotFound(f"no inference node {name!r}", name=name)

    def list_nodes(self, model: str | None = None) -> list[InferenceNode]:
        sql = f"SELECT {_columns(rows.NODE_COLUMNS)} FROM inference_nodes"
        params: tuple[str, ...] = ()
        if model is not None:
            sql, params = sql + " WHERE model = %s", (model,)
        with self._transaction() as conn:
            found = conn.execute(sql + " ORDER BY name", params).fetchall()
        return [rows.node_from_row(r) for r in found]

    def remove_node(self, name: str) -> None:
        """Raises `NotFound`."""
        with self._transaction() as conn:
            if conn.execute("DELETE FROM inference_nodes WHERE name = %s", (name,)).rowcount == 0:
                raise NotFound(f"no inference node {name!r}", name=name)

    # metering
    def append_usage(self, records: Iterable[UsageRecord]) -> None:
        names = rows.USAGE_COLUMNS
        batch = [rows.usage_row(r) for r in records]
        if not batch:
            return
        with self._transaction() as conn, conn.cursor() as cur:
            cur.executemany(f"INSERT INTO usage ({_columns(names)}) VALUES ({_marks(names)})", batch)

    def query_usage(self, query: UsageQuery) -> list[UsageRecord]:
        """Newest first (by time, then by insertion order), at most `query.limit` records."""
        filters = rows.usage_filters(query)
        where = " AND ".join(f"{column} {op} %s" for column, op, _ in filters) or "TRUE"
        sql = f"SELECT {_columns(rows.USAGE_COLUMNS)} FROM usage WHERE {where} ORDER BY time DESC, id DESC LIMIT %s"
        with self._transaction() as conn:
            found = conn.execute(sql, [value for _, _, value in filters] + [max(query.limit, 0)]).fetchall()
        return [rows.usage_from_row(r) for r in found]

    # audit
    def append_audit(self, records: Iterable[AuditRecord]) -> None:
        names = rows.AUDIT_COLUMNS
        batch = [rows.audit_row(r) for r in records]
        if not batch:
            return
        with self._transaction() as conn, conn.cursor() as cur:
            cur.executemany(f"INSERT INTO audit ({_columns(names)}) VALUES ({_marks(names)})", batch)

    def query_audit(self, query: AuditQuery) -> list[AuditRecord]:
        """Newest first (by time, then by insertion order), at most `query.limit` records."""
        filters = rows.audit_filters(query)
        where = " AND ".join(f"{column} {op} %s" for column, op, _ in filters) or "TRUE"
        sql = f"SELECT {_columns(rows.AUDIT_COLUMNS)} FROM audit WHERE {where} ORDER BY time DESC, id DESC LIMIT %s"
        with self._transaction() as conn:
            found = conn.execute(sql, [value for _, _, value in filters] + [max(query.limit, 0)]).fetchall()
        return [rows.audit_from_row(r) for r in found]

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
