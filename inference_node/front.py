"""What the two model fronts (`mcp_server.py`, `a2a_agent.py`) share: their command line, router and tracing.

Each front is its own process (launched by `meshgate up`, see `launcher.py`) with its own router over the
registry's nodes; the router's settings come from the config's `inference:` section as arguments.
"""

from __future__ import annotations

import argparse
from collections.abc import Generator
from contextlib import contextmanager

from inference_node.client import NodeClient
from inference_node.router import RouterConfig
from inference_node.routing import ModelRouter
from meshgate.config import InferenceConfig, TelemetryConfig
from meshgate.telemetry import configure_tracing
from registry import open_store


def add_front_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = InferenceConfig()
    parser.add_argument("--model", required=True, help="model id, as the nodes registered it")
    parser.add_argument("--registry", required=True, help="registry URL where the nodes are registered")
    parser.add_argument("--routing", choices=["affinity", "round-robin"], default=defaults.routing)
    parser.add_argument("--balance-threshold", type=float, default=defaults.balance_threshold)
    parser.add_argument("--stale-after-s", type=float, default=defaults.stale_after_s)
    parser.add_argument("--chunk-timeout-s", type=float, default=defaults.chunk_timeout_s)
    parser.add_argument("--telemetry", choices=["none", "console", "otlp"], default="none", help="span exporter")
    parser.add_argument("--otlp-endpoint", default=TelemetryConfig().otlp_endpoint)


def front_arguments(inference: InferenceConfig, telemetry: TelemetryConfig, registry: str, model: str) -> list[str]:
    """The arguments `add_front_arguments` parses, from the config (what `meshgate up` passes a front)."""
    return [
        *("--model", model, "--registry", registry, "--routing", inference.routing),
        *("--balance-threshold", str(inference.balance_threshold), "--stale-after-s", str(inference.stale_after_s)),
        *("--chunk-timeout-s", str(inference.chunk_timeout_s)),
        *("--telemetry", telemetry.exporter, "--otlp-endpoint", telemetry.otlp_endpoint),
    ]


@contextmanager
def front_router(args: argparse.Namespace, service_name: str) -> Generator[ModelRouter]:
    """Tracing per `--telemetry` (the SDK's server span then joins the gateway's or broker's trace) and a
    router over the registry's nodes, for as long as the front runs."""
    telemetry = TelemetryConfig(exporter=args.telemetry, otlp_endpoint=args.otlp_endpoint, service_name=service_name)
    tracing = configure_tracing(telemetry)
    store = open_store(args.registry)
    config = RouterConfig(
        policy=args.routing,
        balance_threshold=args.balance_threshold,
        stale_after_s=args.stale_after_s,
        chunk_timeout_s=args.chunk_timeout_s,
    )
    try:
        yield ModelRouter(store, connect=lambda node: NodeClient(node.address, node.model), config=config)
    finally:
        store.close()
        if tracing is not None:
            tracing.shutdown()
