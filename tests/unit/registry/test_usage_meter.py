from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, NumberDataPoint

from meshgate.errors import RegistryError
from registry.models import UsageQuery, UsageRecord
from registry.sqlite_store import SqliteStore
from registry.usage import COMPLETION_TOKENS, PROMPT_TOKENS, UsageMeter

TIME = "2025-03-01T12:00:00.000000Z"


class GatedStore(SqliteStore):
    """An in-memory SQLite store whose usage appends can fail or wait for a gate."""

    def __init__(self) -> None:
        super().__init__(":memory:")
        self.gate = threading.Event()
        self.gate.set()
        self.failures_left = 0

    def append_usage(self, records: Iterable[UsageRecord]) -> None:
        batch = list(records)
        self.gate.wait(5)
        if self.failures_left > 0:
            self.failures_left -= 1
            raise RegistryError("injected failure")
        super().append_usage(batch)


@pytest.fixture
def store() -> Iterator[GatedStore]:
    store = GatedStore()
    yield store
    store.close()


@pytest.fixture
def reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


def usage(tenant: str = "acme", node: str = "cpu-1", prompt: int = 100, completion: int = 20) -> UsageRecord:
    return UsageRecord(TIME, "alice", tenant, "smollm2", node, prompt, completion, "mcp", "d1")


def meter_for(store: GatedStore, reader: InMemoryMetricReader, **options: int) -> UsageMeter:
    provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    return UsageMeter(store, meter=provider.get_meter("test"), **options)


def points(reader: InMemoryMetricReader, name: str) -> dict[tuple[str, ...], int]:
    data = reader.get_metrics_data()
    assert data is not None
    found: dict[tuple[str, ...], int] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name != name:
                    continue
                for point in metric.data.data_points:
                    assert isinstance(point, NumberDataPoint)
                    attrs = point.attributes or {}
                    key = tuple(str(attrs[k]) for k in ("tenant", "model", "node", "via"))
                    found[key] = int(point.value)
    return found


def test_recorded_usage_is_written_to_the_store(store: GatedStore, reader: InMemoryMetricReader) -> None:
    meter = meter_for(store, reader)
    meter.record(usage())
    meter.record(usage(tenant="globex", prompt=7, completion=1))
    assert meter.query(UsageQuery()) == [usage(tenant="globex", prompt=7, completion=1), usage()]
    meter.close()


def test_recorded_tokens_are_counted_per_tenant_model_node_and_path(
    store: GatedStore, reader: InMemoryMetricReader
) -> None:
    meter = meter_for(store, reader)
    meter.record(usage())
    meter.record(usage(prompt=50, completion=5))
    meter.record(usage(node="cpu-2", prompt=1, completion=2))
    assert points(reader, PROMPT_TOKENS) == {
        ("acme", "smollm2", "cpu-1", "mcp"): 150,
        ("acme", "smollm2", "cpu-2", "mcp"): 1,
    }
    assert points(reader, COMPLETION_TOKENS)[("acme", "smollm2", "cpu-1", "mcp")] == 25
    meter.close()


def test_recording_does_not_wait_for_a_slow_store(store: GatedStore, reader: InMemoryMetricReader) -> None:
    meter = meter_for(store, reader)
    store.gate.clear()
    for _ in range(10):
        meter.record(usage())
    assert meter.pending == 10
    store.gate.set()
    assert meter.flush()
    assert len(store.query_usage(UsageQuery())) == 10
    meter.close()


def test_usage_survives_store_failures(store: GatedStore, reader: InMemoryMetricReader) -> None:
    store.failures_left = 2
    meter = meter_for(store, reader, retry_initial_s=0)
    meter.record(usage())
    assert meter.flush()
    assert store.query_usage(UsageQuery()) == [usage()]
    meter.close()


def test_usage_beyond_max_pending_is_refused_loudly_but_still_counted(
    store: GatedStore, reader: InMemoryMetricReader, caplog: pytest.LogCaptureFixture
) -> None:
    meter = meter_for(store, reader, max_pending=2)
    store.gate.clear()
    for _ in range(3):
        meter.record(usage())
    assert (meter.pending, meter.dropped) == (2, 1)
    assert any(r.levelno == logging.ERROR and "dropped the usage" in r.getMessage() for r in caplog.records)
    assert points(reader, PROMPT_TOKENS) == {("acme", "smollm2", "cpu-1", "mcp"): 300}
    store.gate.set()
    meter.close()


def test_recording_after_close_is_an_error(store: GatedStore, reader: InMemoryMetricReader) -> None:
    meter = meter_for(store, reader)
    meter.close()
    with pytest.raises(RuntimeError):
        meter.record(usage())


def test_reported_usage_is_the_callers_record_with_counts_made_whole() -> None:
    from registry.usage import reported_usage

    record = reported_usage(
        {"node": "cpu-1", "prompt_tokens": 38.0, "completion_tokens": -1},  # protobuf Struct numbers are floats
        subject="alice",
        tenant="travel",
        via="a2a",
        decision_id="d1",
        trace_id="",
        model="smollm2",
    )
    assert (record.model, record.node, record.prompt_tokens, record.completion_tokens) == ("smollm2", "cpu-1", 38, 0)
    assert (record.subject, record.tenant, record.via, record.decision_id) == ("alice", "travel", "a2a", "d1")
    assert record.time.endswith("Z")
