"""Cross-file test infrastructure only: the anyio backend, free ports, a clean environment."""

from __future__ import annotations

import importlib.util
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def free_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    yield port


@pytest.fixture(scope="session")
def _span_exporter() -> Iterator[object]:
    """One SDK tracer provider per test process (OpenTelemetry allows setting it only once)."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    yield exporter
    provider.shutdown()


@pytest.fixture
def spans(_span_exporter: object) -> Iterator[object]:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    assert isinstance(_span_exporter, InMemorySpanExporter)
    _span_exporter.clear()
    yield _span_exporter


@pytest.fixture(scope="session")
def opa_library() -> Path:
    """OPA's Go evaluator library, fetched from PyPI by scripts/fetch_opa.py; skips with the reason if it cannot be."""
    script = Path(__file__).resolve().parents[1] / "scripts" / "fetch_opa.py"
    spec = importlib.util.spec_from_file_location("fetch_opa", script)
    assert spec is not None and spec.loader is not None
    fetch_opa = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fetch_opa)
    try:
        return fetch_opa.fetch()
    except RuntimeError as exc:
        pytest.skip(f"OPA's library could not be fetched: {exc}")
