"""The store behaviour every `RegistryStore` promises, run against SQLite files and a real PostgreSQL."""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from meshgate.commands.audit import audit_query
from meshgate.commands.keys import keys_create, keys_list, keys_revoke, tenants_add, tenants_list
from meshgate.commands.nodes import nodes_list
from meshgate.commands.usage import usage_totals
from meshgate.errors import AlreadyExists, ConfigError, NotFound, RegistryError, Unauthenticated
from meshgate.identity import Authenticator
from registry import open_store
from registry.audit import AuditLog
from registry.hashing import tool_definition_hash
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
from registry.sqlite_store import MIGRATIONS, SqliteStore
from registry.store import RegistryStore
from registry.usage import UsageMeter

POSTGRES_URLS = ("postgresql://postgres@127.0.0.1:5432/test", "postgresql://root@127.0.0.1:5432/test")


@dataclass(frozen=True)
class Backend:
    store: RegistryStore
    reopen: Callable[[], RegistryStore]
    """A second, independent store over the same database."""
    raw_sql: Callable[[str], None]
    """Run SQL on a connection of its own, bypassing the store."""
    refusal: type[Exception]
    """What the database driver raises when a trigger refuses a statement."""
    drop_connections: Callable[[], None] | None = None
    """Kill the store's server connections (PostgreSQL only)."""


def postgres_admin_url() -> str:
    psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed: pip install 'meshgate[postgres]'")
    errors: list[str] = []
    for url in POSTGRES_URLS:
        try:
            with psycopg.connect(url, connect_timeout=3):
                return url
        except psycopg.OperationalError as exc:
            errors.append(f"{url}: {str(exc).strip()}")
    pytest.skip("PostgreSQL is not reachable at 127.0.0.1:5432 (" + "; ".join(errors) + ")")


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    opened: list[RegistryStore] = []

    def track(store: RegistryStore) -> RegistryStore:
        opened.append(store)
        return store

    if request.param == "sqlite":
        path = tmp_path / "registry.db"

        def sqlite_raw(statement: str) -> None:
            with closing(sqlite3.connect(path)) as conn, conn:
                conn.execute(statement)

        yield Backend(track(SqliteStore(path)), lambda: track(SqliteStore(path)), sqlite_raw, sqlite3.IntegrityError)
        for store in opened:
            store.close()
        return

    import psycopg
    from psycopg import sql

    admin = postgres_admin_url()
    schema = f"mg_test_{uuid.uuid4().hex}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    url = f"{admin}?options=-csearch_path%3D{schema}&application_name={schema}"

    def postgres_raw(statement: str) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(statement.encode())

    def drop_connections() -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE application_name = %s", (schema,)
            )

    try:
        refusal = psycopg.errors.InsufficientPrivilege
        yield Backend(track(open_store(url)), lambda: track(open_store(url)), postgres_raw, refusal, drop_connections)
    finally:
        for store in opened:
            store.close()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


def server(name: str = "fs", **changes: Any) -> UpstreamServer:
    base = UpstreamServer(
        name=name,
        transport="stdio",
        command=("python", "servers/fs.py"),
        env={"ROOT": "/srv/é"},
        headers={"Authorization": "Bearer upstream"},
        prefix=None,
        timeout_s=12.5,
    )
    return replace(base, **changes)


def tool(name: str, description: str = "d", schema: dict[str, Any] | None = None) -> ToolRecord:
    schema = schema if schema is not None else {"type": "object", "properties": {"b": {}, "a": {}}}
    digest = tool_definition_hash(name, description, schema, None)
    return ToolRecord(
        server="fs", name=name, description=description, input_schema=schema, output_schema=None, definition_hash=digest
    )


def audit(decision_id: str, time: str = "2025-03-01T12:00:00.000000Z", **changes: Any) -> AuditRecord:
    base = AuditRecord(
        decision_id=decision_id,
        time=time,
        subject="alice",
        tenant="acme",
        action="mcp.tools/call",
        resource="fs_read",
        allow=True,
        reasons=("allowed by role reader",),
        latency_us=42,
        engine="regorus",
        bundle_revision="r1",
        trace_id="t" * 32,
        arguments={"path": "/tmp/x", "n": [1, 2]},
        outcome="ok",
        input={"version": 1, "action": "mcp.tools/call", "arguments": {"path": "/tmp/x", "n": [1, 2]}, "é": None},
    )
    return replace(base, **changes)


# servers


def test_a_server_round_trips_every_field(backend: Backend) -> None:
    full = server(launch=("python", "http.py"), url="http://127.0.0.1:9/mcp", cwd="/srv", prefix="", enabled=False)
    backend.store.add_server(full)
    assert backend.store.get_server("fs") == full
    assert backend.reopen().list_servers() == [full]


def test_adding_a_taken_server_name_is_refused_unless_replacing(backend: Backend) -> None:
    backend.store.add_server(server())
    with pytest.raises(AlreadyExists):
        backend.store.add_server(server(timeout_s=1))
    backend.store.add_server(server(timeout_s=1), replace=True)
    assert backend.store.get_server("fs").timeout_s == 1


def test_replacing_a_server_keeps_its_tools(backend: Backend) -> None:
    backend.store.add_server(server())
    backend.store.record_tools("fs", [tool("read")])
    backend.store.add_server(server(timeout_s=1), replace=True)
    assert [t.name for t in backend.store.list_tools("fs")] == ["read"]


def test_an_unknown_server_is_not_found(backend: Backend) -> None:
    with pytest.raises(NotFound):
        backend.store.get_server("nope")
    with pytest.raises(NotFound):
        backend.store.remove_server("nope")


def test_removing_a_server_removes_its_tools(backend: Backend) -> None:
    backend.store.add_server(server())
    backend.store.add_server(server("web"))
    backend.store.record_tools("fs", [tool("read")])
    backend.store.record_tools("web", [replace(tool("fetch"), server="web")])
    backend.store.remove_server("fs")
    assert [s.name for s in backend.store.list_servers()] == ["web"]
    assert [(t.server, t.name) for t in backend.store.list_tools()] == [("web", "fetch")]


# tools


def test_recording_tools_reports_only_changed_definitions(backend: Backend) -> None:
    backend.store.add_server(server())
    assert backend.store.record_tools("fs", [tool("read"), tool("write")]) == []
    first = {t.name: t for t in backend.store.list_tools("fs")}
    changed = backend.store.record_tools("fs", [tool("read"), tool("write", "now exfiltrates"), tool("new")])
    assert changed == ["write"]
    after = {t.name: t for t in backend.store.list_tools("fs")}
    assert after["read"].first_seen == first["read"].first_seen
    assert after["read"].last_seen >= first["read"].last_seen
    assert after["write"].definition_hash == tool("write", "now exfiltrates").definition_hash
    assert after["write"].first_seen >= first["write"].first_seen


def test_recording_tools_replaces_the_whole_set(backend: Backend) -> None:
    backend.store.add_server(server())
    backend.store.record_tools("fs", [tool("read"), tool("write")])
    backend.store.record_tools("fs", [tool("read")])
    assert [t.name for t in backend.store.list_tools()] == ["read"]


def test_tool_schemas_round_trip_with_their_key_order(backend: Backend) -> None:
    backend.store.add_server(server())
    original = tool("read")
    backend.store.record_tools("fs", [original])
    (stored,) = backend.store.list_tools("fs")
    assert list(stored.input_schema["properties"]) == ["b", "a"]
    assert replace(stored, first_seen="", last_seen="") == original


def test_recording_tools_of_an_unknown_server_is_not_found(backend: Backend) -> None:
    with pytest.raises(NotFound):
        backend.store.record_tools("ghost", [tool("read")])


# tenants and API keys


def test_tenants_are_listed_by_name_and_unique(backend: Backend) -> None:
    backend.store.add_tenant(Tenant("globex", "Globex"))
    backend.store.add_tenant(Tenant("acme"))
    with pytest.raises(AlreadyExists):
        backend.store.add_tenant(Tenant("acme"))
    assert backend.store.list_tenants() == [Tenant("acme", ""), Tenant("globex", "Globex")]


def test_api_keys_are_found_listed_by_tenant_and_revoked(backend: Backend) -> None:
    key = ApiKey("k1", "acme", "ci", ("deployer", "reader"), "ab" * 32, "2025-03-01T00:00:00.000000Z")
    backend.store.add_api_key(key)
    backend.store.add_api_key(replace(key, key_id="k2", tenant="globex"))
    with pytest.raises(AlreadyExists):
        backend.store.add_api_key(key)
    assert backend.store.find_api_key("k1") == key
    assert backend.store.find_api_key("nope") is None
    assert [k.key_id for k in backend.store.list_api_keys("acme")] == ["k1"]
    assert len(backend.store.list_api_keys()) == 2
    backend.store.revoke_api_key("k1")
    backend.store.revoke_api_key("k1")
    assert backend.reopen().find_api_key("k1") == replace(key, revoked=True)
    with pytest.raises(NotFound):
        backend.store.revoke_api_key("nope")


# audit


def test_audit_records_round_trip(backend: Backend) -> None:
    records = [audit("d1"), audit("d2", arguments=None, reasons=(), allow=False, input=None)]
    backend.store.append_audit(records)
    assert backend.store.query_audit(AuditQuery()) == records[::-1]


def test_audit_queries_filter_and_return_newest_first(backend: Backend) -> None:
    backend.store.append_audit(
        [
            audit("old", time="2025-03-01T10:00:00.000000Z"),
            audit("denied", time="2025-03-01T11:00:00.000000Z", allow=False, subject="mallory"),
            audit("other-tenant", time="2025-03-01T11:30:00.000000Z", tenant="globex", action="a2a.message/send"),
            audit("new", time="2025-03-01T12:00:00.000000Z"),
        ]
    )

    def ids(**fields: Any) -> list[str]:
        return [r.decision_id for r in backend.store.query_audit(AuditQuery(**fields))]

    assert ids() == ["new", "other-tenant", "denied", "old"]
    assert ids(since="2025-03-01T11:00:00Z") == ["new", "other-tenant", "denied"]
    assert ids(since="2025-03-01T12:00:00+01:00") == ["new", "other-tenant", "denied"]
    assert ids(subject="mallory") == ["denied"]
    assert ids(tenant="globex") == ["other-tenant"]
    assert ids(action="a2a.message/send") == ["other-tenant"]
    assert ids(allow=False) == ["denied"]
    assert ids(decision_id="old") == ["old"]
    assert ids(tenant="acme", allow=True) == ["new", "old"]
    assert ids(limit=2) == ["new", "other-tenant"]


def test_audit_records_of_the_same_time_come_back_newest_inserted_first(backend: Backend) -> None:
    backend.store.append_audit([audit("a"), audit("b")])
    backend.store.append_audit([audit("c")])
    assert [r.decision_id for r in backend.store.query_audit(AuditQuery())] == ["c", "b", "a"]


def test_arguments_json_cannot_encode_are_stored_as_text(backend: Backend) -> None:
    backend.store.append_audit([audit("d1", arguments={"blob": b"\x00"})])
    (stored,) = backend.store.query_audit(AuditQuery())
    assert stored.arguments == {"blob": "b'\\x00'"}


@pytest.mark.parametrize(
    "sql", ["UPDATE audit SET allow = NOT allow", "DELETE FROM audit", "DELETE FROM audit WHERE decision_id = 'd1'"]
)
def test_the_database_refuses_to_change_or_delete_audit_records(backend: Backend, sql: str) -> None:
    backend.store.append_audit([audit("d1")])
    with pytest.raises(backend.refusal) as caught:
        backend.raw_sql(sql)
    assert "audit log is append-only" in str(caught.value)
    assert [r.decision_id for r in backend.store.query_audit(AuditQuery())] == ["d1"]


def test_the_audit_log_writes_through_a_real_store(backend: Backend) -> None:
    log = AuditLog(backend.store)
    for i in range(300):
        log.append(audit(f"d{i:03}"))
    assert len(log.query(AuditQuery(limit=1000))) == 300
    log.close()


def test_one_store_serves_several_threads_at_once(backend: Backend) -> None:
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(25):
                key = ApiKey(f"k{n}-{i}", f"t{n}", "s", (), "00", "2025-03-01T00:00:00.000000Z")
                backend.store.add_api_key(key)
                assert backend.store.find_api_key(key.key_id) == key
                backend.store.append_audit([audit(f"{n}-{i}")])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(backend.store.list_api_keys()) == 100
    assert len(backend.store.query_audit(AuditQuery(limit=1000))) == 100


def test_two_stores_on_one_database_see_each_others_writes(backend: Backend) -> None:
    other = backend.reopen()
    backend.store.add_tenant(Tenant("acme"))
    other.add_tenant(Tenant("globex"))
    assert [t.name for t in backend.store.list_tenants()] == ["acme", "globex"]


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_the_postgres_store_reconnects_after_losing_its_connection(backend: Backend) -> None:
    assert backend.drop_connections is not None
    backend.store.add_tenant(Tenant("acme"))
    backend.drop_connections()
    with pytest.raises(RegistryError):
        backend.store.list_tenants()
    assert backend.store.list_tenants() == [Tenant("acme", "")]


def test_reopening_an_up_to_date_database_migrates_nothing(backend: Backend) -> None:
    backend.store.append_audit([audit("d1")])
    assert [r.decision_id for r in backend.reopen().query_audit(AuditQuery())] == ["d1"]


def test_a_database_from_before_the_input_column_gets_it_and_keeps_its_records(backend: Backend) -> None:
    backend.store.close()
    # Back to schema 1 as an older meshgate left it, with a record written then.
    _drop_schema_4(backend)
    backend.raw_sql("DROP TABLE agents")
    backend.raw_sql("ALTER TABLE audit DROP COLUMN input")
    if isinstance(backend.store, SqliteStore):
        backend.raw_sql("PRAGMA user_version = 1")
    else:
        backend.raw_sql("DELETE FROM meshgate_schema WHERE version > 1")
    old = audit("old", time="2025-03-01T11:00:00.000000Z", input=None)
    columns = "decision_id, time, subject, tenant, action, resource, allow, reasons, latency_us, engine, "
    columns += "bundle_revision, trace_id, arguments, outcome"
    backend.raw_sql(
        f"INSERT INTO audit ({columns}) VALUES ('old', '{old.time}', 'alice', 'acme', 'mcp.tools/call', 'fs_read',"
        " TRUE, '[\"allowed by role reader\"]', 42, 'regorus', 'r1', '" + "t" * 32 + "',"
        ' \'{"path": "/tmp/x", "n": [1, 2]}\', \'ok\')'
    )
    store = backend.reopen()
    store.append_audit([audit("new")])
    assert store.query_audit(AuditQuery()) == [audit("new"), old]


# A2A agents


CARD = '{"name": "Ledger",  "description": "é", "version": "1.0.0", "skills": []}\n'


def agent(agent_id: str = "ledger", **changes: Any) -> AgentRecord:
    base = AgentRecord(
        agent_id=agent_id,
        organization="finance",
        card_json=CARD,
        card_url="http://127.0.0.1:9/.well-known/agent-card.json",
        signed=True,
        registered_at="2025-03-01T12:00:00.000000Z",
    )
    return replace(base, **changes)


def test_an_agent_round_trips_with_its_card_byte_for_byte(backend: Backend) -> None:
    backend.store.add_agent(agent())
    backend.store.add_agent(agent("atlas", card_url="", signed=False, organization="travel"))
    assert backend.reopen().get_agent("ledger") == agent()
    assert backend.store.get_agent("ledger").card_json is not CARD
    assert backend.store.get_agent("ledger").card_json == CARD
    assert backend.store.list_agents() == [agent("atlas", card_url="", signed=False, organization="travel"), agent()]


def test_adding_a_taken_agent_id_is_refused_unless_replacing(backend: Backend) -> None:
    backend.store.add_agent(agent())
    with pytest.raises(AlreadyExists) as caught:
        backend.store.add_agent(agent(organization="other"))
    assert caught.value.code == "already_exists"
    backend.store.add_agent(agent(organization="other", signed=False), replace=True)
    assert backend.store.list_agents() == [agent(organization="other", signed=False)]


def test_an_unknown_agent_is_not_found(backend: Backend) -> None:
    with pytest.raises(NotFound):
        backend.store.get_agent("nope")
    with pytest.raises(NotFound):
        backend.store.remove_agent("nope")
    backend.store.add_agent(agent())
    backend.store.remove_agent("ledger")
    assert backend.store.list_agents() == []
    with pytest.raises(NotFound):
        backend.store.get_agent("ledger")


def test_a_database_from_before_the_agents_table_gets_it_and_keeps_its_data(backend: Backend) -> None:
    backend.store.add_tenant(Tenant("acme"))
    backend.store.append_audit([audit("d1")])
    backend.store.close()
    # Back to schema 2 as the meshgate before the A2A broker left it.
    _drop_schema_4(backend)
    backend.raw_sql("DROP TABLE agents")
    if isinstance(backend.store, SqliteStore):
        backend.raw_sql("PRAGMA user_version = 2")
    else:
        backend.raw_sql("DELETE FROM meshgate_schema WHERE version > 2")
    store = backend.reopen()
    store.add_agent(agent())
    assert store.list_agents() == [agent()]
    assert store.list_tenants() == [Tenant("acme")]
    assert [r.decision_id for r in store.query_audit(AuditQuery())] == ["d1"]


# inference nodes and metering


def _drop_schema_4(backend: Backend) -> None:
    """Undo schemas 5 and 4 (inference nodes, usage) so a test can start from an older meshgate's database."""
    _drop_schema_5(backend)
    backend.raw_sql("DROP TABLE inference_nodes")
    backend.raw_sql("DROP TABLE usage")
    if not isinstance(backend.store, SqliteStore):
        backend.raw_sql("DROP FUNCTION usage_append_only")


def node(name: str = "cpu-1", **changes: Any) -> InferenceNode:
    base = InferenceNode(name=name, model="smollm2", engine="llama.cpp", address="127.0.0.1:8950", capacity=2)
    return replace(base, **changes)


def usage(time: str = "2025-03-01T12:00:00.000000Z", **changes: Any) -> UsageRecord:
    base = UsageRecord(
        time=time,
        subject="alice",
        tenant="acme",
        model="smollm2",
        node="cpu-1",
        prompt_tokens=120,
        completion_tokens=30,
        via="mcp",
        decision_id="d1",
        trace_id="t" * 32,
    )
    return replace(base, **changes)


def test_a_node_registers_with_times_set_and_lists_by_name_and_model(backend: Backend) -> None:
    backend.store.upsert_node(node("gpu-1", model="qwen", engine="vllm", capacity=64))
    backend.store.upsert_node(node())
    (stored,) = backend.reopen().list_nodes("smollm2")
    assert replace(stored, registered_at="", heartbeat_at="") == node()
    assert stored.registered_at == stored.heartbeat_at != ""
    assert [n.name for n in backend.store.list_nodes()] == ["cpu-1", "gpu-1"]
    assert backend.store.list_nodes("nothing") == []


def test_re_registering_a_node_replaces_it(backend: Backend) -> None:
    backend.store.upsert_node(node())
    backend.store.report_load("cpu-1", 2, 5)
    backend.store.upsert_node(node(address="127.0.0.1:9999"))
    (stored,) = backend.store.list_nodes()
    assert (stored.address, stored.in_flight, stored.queued) == ("127.0.0.1:9999", 0, 0)


def test_reported_load_is_stored_with_a_fresh_heartbeat(backend: Backend) -> None:
    backend.store.upsert_node(node())
    (before,) = backend.store.list_nodes()
    backend.store.report_load("cpu-1", 1, 3)
    (after,) = backend.store.list_nodes()
    assert (after.in_flight, after.queued) == (1, 3)
    assert after.heartbeat_at >= before.heartbeat_at
    assert after.registered_at == before.registered_at


def test_an_unknown_node_is_not_found(backend: Backend) -> None:
    with pytest.raises(NotFound) as caught:
        backend.store.report_load("nope", 0, 0)
    assert caught.value.code == "not_found"
    with pytest.raises(NotFound):
        backend.store.remove_node("nope")
    backend.store.upsert_node(node())
    backend.store.remove_node("cpu-1")
    assert backend.store.list_nodes() == []


def test_usage_records_round_trip_and_filter_newest_first(backend: Backend) -> None:
    records = [
        usage(),
        usage("2025-03-01T12:00:01.000000Z", tenant="globex", subject="bob", via="a2a", decision_id=""),
        usage("2025-03-01T12:00:02.000000Z", model="qwen", node="gpu-1", prompt_tokens=7, completion_tokens=0),
    ]
    backend.store.append_usage(records)
    backend.store.append_usage([])
    assert backend.reopen().query_usage(UsageQuery()) == records[::-1]
    assert backend.store.query_usage(UsageQuery(tenant="globex")) == [records[1]]
    assert backend.store.query_usage(UsageQuery(subject="alice", model="smollm2")) == [records[0]]
    assert backend.store.query_usage(UsageQuery(since="2025-03-01T12:00:01Z")) == records[:0:-1]
    assert backend.store.query_usage(UsageQuery(limit=1)) == [records[2]]


@pytest.mark.parametrize("sql", ["UPDATE usage SET prompt_tokens = 0", "DELETE FROM usage"])
def test_the_database_refuses_to_change_or_delete_usage_records(backend: Backend, sql: str) -> None:
    backend.store.append_usage([usage()])
    with pytest.raises(backend.refusal) as caught:
        backend.raw_sql(sql)
    assert "usage log is append-only" in str(caught.value)
    assert backend.store.query_usage(UsageQuery()) == [usage()]


def test_the_usage_meter_writes_through_a_real_store(backend: Backend) -> None:
    meter = UsageMeter(backend.store)
    for i in range(300):
        meter.record(usage(prompt_tokens=i))
    assert len(meter.query(UsageQuery(limit=1000))) == 300
    meter.close()


def test_a_database_from_before_inference_nodes_gets_them_and_keeps_its_data(backend: Backend) -> None:
    backend.store.add_agent(agent())
    backend.store.append_audit([audit("d1")])
    backend.store.close()
    _drop_schema_4(backend)
    if isinstance(backend.store, SqliteStore):
        backend.raw_sql("PRAGMA user_version = 3")
    else:
        backend.raw_sql("DELETE FROM meshgate_schema WHERE version > 3")
    store = backend.reopen()
    store.upsert_node(node())
    store.append_usage([usage()])
    assert [n.name for n in store.list_nodes()] == ["cpu-1"]
    assert store.query_usage(UsageQuery()) == [usage()]
    assert store.list_agents() == [agent()]
    assert [r.decision_id for r in store.query_audit(AuditQuery())] == ["d1"]


def test_usage_and_nodes_commands_read_both_stores(backend: Backend) -> None:
    backend.store.append_usage([usage(), usage(node="cpu-2", completion_tokens=10)])
    backend.store.upsert_node(node())
    assert usage_totals(backend.store, by=("tenant",)).splitlines()[1].split() == ["acme", "2", "240", "40", "280"]
    assert nodes_list(backend.store).splitlines()[1].split()[:4] == ["cpu-1", "smollm2", "llama.cpp", "127.0.0.1:8950"]


# A2A broker state: task owners and the chain seal key


def _drop_schema_5(backend: Backend) -> None:
    """Undo schema 5 (broker tasks, secrets) so a test can start from an older meshgate's database."""
    backend.raw_sql("DROP TABLE broker_tasks")
    backend.raw_sql("DROP TABLE secrets")


def test_a_broker_task_keeps_its_first_owner_and_lists_newest_first(backend: Backend) -> None:
    assert backend.store.add_broker_task(BrokerTask("t1", "apikey|travel|alice", "ledger", "currency-quote"))
    assert not backend.reopen().add_broker_task(BrokerTask("t1", "apikey|travel|mallory", "vault", ""))
    stored = backend.store.find_broker_task("t1")
    assert stored is not None and stored.created_at.endswith("Z")
    assert stored == BrokerTask("t1", "apikey|travel|alice", "ledger", "currency-quote", stored.created_at)
    assert backend.store.find_broker_task("t2") is None
    backend.store.add_broker_task(BrokerTask("t2", "apikey|travel|bob", "ledger", ""))
    backend.store.add_broker_task(BrokerTask("t3", "apikey|travel|alice", "vault", ""))
    assert [t.task_id for t in backend.reopen().list_broker_tasks("apikey|travel|alice")] == ["t3", "t1"]
    assert [t.task_id for t in backend.store.list_broker_tasks("apikey|travel|alice", limit=1)] == ["t3"]
    assert backend.store.list_broker_tasks("apikey|travel|carol") == []


def test_a_shared_secret_is_made_once_and_every_store_gets_it(backend: Backend) -> None:
    stores = [backend.store, backend.reopen(), backend.reopen()]
    got: list[bytes] = []

    def first_use(n: int) -> None:  # processes starting together, each with a secret of its own to offer
        got.append(stores[n % 3].shared_secret("seal", bytes([n]) * 32))

    threads = [threading.Thread(target=first_use, args=(n,)) for n in range(9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(got)) == 1 and len(got[0]) == 32
    assert backend.reopen().shared_secret("seal", b"\xff" * 32) == got[0]
    assert backend.store.shared_secret("other", b"\x00" * 32) == b"\x00" * 32


def test_a_database_from_before_broker_tasks_gets_them_and_keeps_its_data(backend: Backend) -> None:
    backend.store.add_agent(agent())
    backend.store.upsert_node(node())
    backend.store.append_audit([audit("d1")])
    backend.store.close()
    # Back to schema 4 as the meshgate that kept tasks and the seal key in memory left it.
    _drop_schema_5(backend)
    if isinstance(backend.store, SqliteStore):
        backend.raw_sql("PRAGMA user_version = 4")
    else:
        backend.raw_sql("DELETE FROM meshgate_schema WHERE version > 4")
    store = backend.reopen()
    assert store.add_broker_task(BrokerTask("t1", "apikey|travel|alice", "ledger", ""))
    assert [t.task_id for t in store.list_broker_tasks("apikey|travel|alice")] == ["t1"]
    assert len(store.shared_secret("seal", b"k" * 32)) == 32
    assert store.list_agents() == [agent()]
    assert [n.name for n in store.list_nodes()] == ["cpu-1"]
    assert [r.decision_id for r in store.query_audit(AuditQuery())] == ["d1"]


# CLI command bodies


def test_a_created_key_authenticates_until_revoked(backend: Backend) -> None:
    summary, token = keys_create(backend.store, "acme", "ci-bot", ["deployer"])
    assert token.startswith("mgk_") and token not in summary and "ci-bot" in summary
    auth = Authenticator([], backend.store, allow_anonymous=False)
    assert auth.authenticate(None, token).subject == "ci-bot"
    (key,) = backend.store.list_api_keys("acme")
    assert token not in keys_list(backend.store)
    assert "active" in keys_list(backend.store, "acme")
    keys_revoke(backend.store, key.key_id)
    assert "revoked" in keys_list(backend.store)
    with pytest.raises(Unauthenticated):
        auth.authenticate(None, token)


def test_tenant_commands_add_and_list(backend: Backend) -> None:
    assert tenants_list(backend.store) == "no tenants"
    tenants_add(backend.store, "acme", "Acme Corp")
    assert tenants_list(backend.store).splitlines()[1].split() == ["acme", "Acme", "Corp"]


def test_audit_command_prints_a_table_or_json_lines(backend: Backend) -> None:
    backend.store.append_audit([audit("d1"), audit("d2", allow=False, reasons=("no role",))])
    table = audit_query(backend.store, denied_only=True)
    assert table.splitlines()[0].split()[:3] == ["TIME", "DECISION", "SUBJECT"]
    assert [line.split()[1] for line in table.splitlines()[1:]] == ["d2"]
    lines = audit_query(backend.store, as_json=True, limit=10).splitlines()
    assert [line.count('"decision_id"') for line in lines] == [1, 1]
    assert json.loads(lines[0])["input"] == audit("d2").input
    assert audit_query(backend.store, subject="nobody") == "no audit records match"


# opening stores by URL


def test_open_store_understands_sqlite_urls_and_bare_paths(tmp_path: Path) -> None:
    for url in (f"sqlite:///{tmp_path}/a.db", str(tmp_path / "b.db"), "sqlite:///rel/c.db"):
        store = open_store(url, base_dir=tmp_path)
        assert isinstance(store, SqliteStore)
        store.close()
    assert sorted(p.name for p in tmp_path.rglob("*.db")) == ["a.db", "b.db", "c.db"]


def test_open_store_refuses_unknown_schemes() -> None:
    with pytest.raises(ConfigError):
        open_store("mysql://localhost/db")


def test_a_database_from_a_newer_meshgate_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(RegistryError):
        SqliteStore(path)


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "r.db")
    with closing(sqlite3.connect(tmp_path / "r.db")) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("PRAGMA user_version").fetchone() == (len(MIGRATIONS),)
    store.close()
