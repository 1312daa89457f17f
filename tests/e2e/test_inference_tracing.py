"""One trace from the caller through the router to the node: W3C trace context crosses the gRPC call.

A real node (the CPU engine, gRPC on 127.0.0.1:0) in this process, reached by `ModelRouter` with the real
`NodeClient`; the spans land in the test's in-memory exporter.
"""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from inference_node.client import NodeClient
from inference_node.engine import ChatMessage, GenerationRequest
from inference_node.node import NodeConfig, running_node
from inference_node.routing import ModelRouter
from registry.sqlite_store import SqliteStore

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


async def test_the_nodes_span_is_a_child_of_the_route_span_in_the_callers_trace(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    store = SqliteStore(tmp_path / "registry.db")
    router = ModelRouter(store, connect=lambda node: NodeClient(node.address, node.model))
    request = GenerationRequest(request_id="r1", messages=(ChatMessage("user", "Say hi."),), max_tokens=4)
    try:
        async with running_node(NodeConfig(name="cpu-1", port=0, capacity=1), store):
            with trace.get_tracer("test").start_as_current_span("caller") as caller, anyio.fail_after(60):
                chunks = [routed async for routed in router.generate(request, "smollm2")]
    finally:
        await router.aclose()
        store.close()
    by_name = {span.name: span for span in spans.get_finished_spans()}
    route, node = by_name["route smollm2"], by_name["inference.generate"]
    trace_id = caller.get_span_context().trace_id
    assert route.context is not None and node.context is not None
    assert route.context.trace_id == node.context.trace_id == trace_id
    assert route.parent is not None and route.parent.span_id == caller.get_span_context().span_id
    assert node.parent is not None and node.parent.span_id == route.context.span_id
    assert node.attributes is not None and route.attributes is not None
    assert node.attributes["meshgate.node"] == route.attributes["meshgate.node"] == "cpu-1"
    assert node.attributes["gen_ai.usage.output_tokens"] == chunks[-1].chunk.completion_tokens
