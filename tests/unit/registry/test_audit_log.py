from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator

import pytest

from meshgate.errors import RegistryError
from registry.audit import AuditLog
from registry.models import AuditQuery, AuditRecord
from registry.sqlite_store import SqliteStore

TIME = "2025-03-01T12:00:00.000000Z"


class FlakyStore(SqliteStore):
    """An in-memory SQLite store whose appends can fail or wait for a gate; it records batch sizes."""

    def __init__(self) -> None:
        super().__init__(":memory:")
        self.failures_left = 0
        self.gate = threading.Event()
        self.gate.set()
        self.batches: list[int] = []

    def append_audit(self, records: Iterable[AuditRecord]) -> None:
        batch = list(records)
        self.gate.wait(5)
        if self.failures_left > 0:
            self.failures_left -= 1
            raise RegistryError("injected failure")
        super().append_audit(batch)
        self.batches.append(len(batch))


def record(decision_id: str) -> AuditRecord:
    return AuditRecord(
        decision_id=decision_id,
        time=TIME,
        subject="alice",
        tenant="acme",
        action="mcp.tools/call",
        resource="fs_read",
        allow=True,
        reasons=(),
        latency_us=42,
    )


@pytest.fixture
def store() -> Iterator[FlakyStore]:
    store = FlakyStore()
    yield store
    store.close()


def test_appends_from_several_threads_are_all_written_in_order(store: FlakyStore) -> None:
    log = AuditLog(store)

    def writer(t: int) -> None:
        for i in range(300):
            log.append(record(f"{t}-{i}"))

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert log.flush()
    written = [r.decision_id for r in reversed(store.query_audit(AuditQuery(limit=10_000)))]  # oldest first
    assert len(written) == 8 * 300
    for t in range(8):
        assert [d for d in written if d.startswith(f"{t}-")] == [f"{t}-{i}" for i in range(300)]
    log.close()


def test_a_backlog_is_written_in_batches_of_at_most_256(store: FlakyStore) -> None:
    log = AuditLog(store)
    store.gate.clear()
    for i in range(600):
        log.append(record(str(i)))
    store.gate.set()
    assert log.flush()
    assert sum(store.batches) == 600
    assert max(store.batches) <= 256
    log.close()


def test_query_reads_the_callers_own_appends(store: FlakyStore) -> None:
    log = AuditLog(store)
    log.append(record("d-1"))
    assert [r.decision_id for r in log.query(AuditQuery(decision_id="d-1"))] == ["d-1"]
    log.close()


def test_records_survive_store_failures_and_are_written_once_it_recovers(
    store: FlakyStore, caplog: pytest.LogCaptureFixture
) -> None:
    store.failures_left = 3
    log = AuditLog(store, retry_initial_s=0)
    for i in range(10):
        log.append(record(str(i)))
    assert log.flush()
    assert sorted(int(r.decision_id) for r in store.query_audit(AuditQuery())) == list(range(10))
    assert len([r for r in caplog.records if r.levelno == logging.ERROR and r.exc_info]) == 3
    log.close()


def test_records_beyond_max_pending_are_refused_loudly(store: FlakyStore, caplog: pytest.LogCaptureFixture) -> None:
    log = AuditLog(store, max_pending=3)
    store.gate.clear()
    for i in range(4):
        log.append(record(str(i)))
    assert (log.pending, log.dropped) == (3, 1)
    assert any("dropped the record of decision 3" in r.getMessage() for r in caplog.records)
    store.gate.set()
    assert log.flush()
    assert len(store.query_audit(AuditQuery())) == 3
    log.close()


def test_closing_with_a_dead_store_reports_what_was_not_written(
    store: FlakyStore, caplog: pytest.LogCaptureFixture
) -> None:
    store.failures_left = 10**9
    log = AuditLog(store, retry_initial_s=0)
    log.append(record("lost"))
    assert not log.flush(timeout=0)
    log.close(timeout=0)
    assert any("1 records not written" in r.getMessage() for r in caplog.records)


def test_append_after_close_is_an_error(store: FlakyStore) -> None:
    log = AuditLog(store)
    log.close()
    with pytest.raises(RuntimeError):
        log.append(record("late"))
