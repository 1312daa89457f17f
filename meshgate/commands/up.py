"""`meshgate up`: start the gateway (and the example upstreams the config names) until Ctrl-C."""

from __future__ import annotations

import argparse
import logging

import uvicorn

from meshgate.commands import SubParsers
from meshgate.config import Config
from meshgate.serving import ListeningServer
from meshgate.telemetry import configure_tracing
from registry.store import RegistryStore

logger = logging.getLogger("meshgate")


def add_parser(subparsers: SubParsers) -> None:
    up = subparsers.add_parser(
        "up",
        help="start the gateway on the configured upstreams",
        description="Start the MCP gateway: federates the upstreams in the registry and the config file "
        "(stdio children and HTTP servers it launches), serves MCP streamable HTTP at gateway.path and "
        "/healthz, decides every call with the Rego bundle and appends each decision to the audit log. "
        "Ctrl-C stops it and every child process it started.",
    )
    up.add_argument("--host", default=None, help="listen address (default: gateway.host, 127.0.0.1)")
    up.add_argument("--port", type=int, default=None, help="listen port; 0 picks a free one (default: gateway.port)")
    up.set_defaults(handler=run_up)


def run_up(args: argparse.Namespace, store: RegistryStore, config: Config) -> int:
    from mcp_gateway.app import build_gateway

    if args.host is not None or args.port is not None:
        gateway_cfg = config.gateway.model_copy(
            update={k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
        )
        config = config.model_copy(update={"gateway": gateway_cfg})
    provider = configure_tracing(config.telemetry)
    gateway = build_gateway(config, store)
    uv_config = uvicorn.Config(
        gateway.asgi(),
        host=config.gateway.host,
        port=config.gateway.port,
        log_level="warning",
        timeout_graceful_shutdown=3,
        lifespan="on",
    )
    try:
        ListeningServer(uv_config, announce_path=config.gateway.path).run()
    finally:
        if provider is not None:
            provider.shutdown()
    return 0
