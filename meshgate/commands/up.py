"""`meshgate up`: start the gateway (and the example upstreams the config names) until Ctrl-C."""

from __future__ import annotations

import argparse
import logging
import signal
from types import FrameType
from typing import TYPE_CHECKING, Any

import anyio
import uvicorn

from meshgate.commands import SubParsers
from meshgate.config import Config
from meshgate.serving import ListeningServer
from meshgate.telemetry import configure_metrics, configure_tracing
from registry.store import RegistryStore

if TYPE_CHECKING:
    from a2a_broker.app import Broker
    from a2a_broker.launcher import AgentLauncher

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
    from inference_node.launcher import with_model_fronts
    from mcp_gateway.app import build_gateway

    if args.host is not None or args.port is not None:
        gateway_cfg = config.gateway.model_copy(
            update={k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
        )
        config = config.model_copy(update={"gateway": gateway_cfg})
    config = with_model_fronts(config)  # each model of `inference:` as a tool upstream and an agent
    provider = configure_tracing(config.telemetry)
    meter_provider = configure_metrics(config.telemetry)
    gateway = build_gateway(config, store)
    uv_config = uvicorn.Config(
        gateway.asgi(),
        host=config.gateway.host,
        port=config.gateway.port,
        log_level="warning",
        timeout_graceful_shutdown=3,
        lifespan="on",
    )
    gateway_server = ListeningServer(uv_config, announce_path=config.gateway.path)
    if config.agents and not config.broker.enabled:
        logger.warning("broker.enabled is false: the %d configured agents are not started", len(config.agents))
    try:
        if config.broker.enabled:
            anyio.run(_serve_with_broker, gateway_server, gateway, config)
        elif config.inference.enabled:
            anyio.run(_serve_with_nodes, gateway_server, config)
        else:
            gateway_server.run()
    finally:
        for telemetry in (provider, meter_provider):
            if telemetry is not None:
                telemetry.shutdown()
    return 0


async def _serve_with_nodes(gateway_server: ListeningServer, config: Config) -> None:
    """The gateway alone, with the config's inference nodes running beside it."""
    from inference_node.launcher import NodeLauncher

    async with NodeLauncher(config).running():
        await gateway_server.serve()


async def _serve_with_broker(gateway_server: ListeningServer, gateway: Any, config: Config) -> None:
    """The broker beside the gateway in one event loop, on the gateway's engine, registry and audit log.

    The broker starts once the gateway listens, so the gateway's line is printed first; the config's
    agents start once the broker listens (a launched agent may call it at once), and stop (children
    terminated, minted keys revoked) only after both servers have shut down. One SIGINT/SIGTERM handler
    serves all: uvicorn's own would re-raise the signal as soon as *its* server had stopped, cancelling
    the other mid-shutdown. A second Ctrl-C forces the exit.
    """
    from a2a_broker.app import build_broker
    from a2a_broker.launcher import AgentLauncher
    from inference_node.launcher import NodeLauncher, model_agents

    broker = build_broker(
        config.broker,
        gateway.store,
        gateway.pdp.engine,
        gateway.authenticator,
        gateway.audit,
        allow_anonymous=config.identity.allow_anonymous,
        meter=gateway.meter,
        metered_agents=model_agents(config),
    )
    broker_config = uvicorn.Config(
        broker.asgi(),
        host=config.broker.host,
        port=config.broker.port,
        log_level="warning",
        timeout_graceful_shutdown=3,
        lifespan="on",
    )
    broker_server = ListeningServer(broker_config, announce_path=config.broker.path, label="broker")
    agents = AgentLauncher(config.agents, gateway.store, base_dir=config.base_dir)
    broker.health_sections["agents"] = agents.health
    nodes = NodeLauncher(config)
    broker.health_sections["nodes"] = nodes.health
    received: list[int] = []

    def on_signal(sig: int, _: FrameType | None) -> None:
        force = sig == signal.SIGINT and signal.SIGINT in received
        received.append(sig)
        for server in (gateway_server, broker_server):
            server.should_exit = True
            server.force_exit = server.force_exit or force

    gateway_server.own_signals = broker_server.own_signals = False
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        async with nodes.running():
            await _serve_all(gateway_server, broker_server, broker, agents, config)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if signal.SIGINT in received:
        raise KeyboardInterrupt  # `meshgate` exits 130, as after a plain gateway's Ctrl-C


async def _serve_all(
    gateway_server: ListeningServer,
    broker_server: ListeningServer,
    broker: Broker,
    agents: AgentLauncher,
    config: Config,
) -> None:
    async with agents.running() as launch_agents, anyio.create_task_group() as tg:
        tg.start_soon(gateway_server.serve)
        await gateway_server.listening.wait()
        tg.start_soon(broker_server.serve)
        await broker_server.listening.wait()
        if not config.broker.public_url:  # `port: 0` binds a free port: advertise the one bound
            broker.base_url = f"http://{config.broker.host}:{broker_server.port}"
        launch_agents(config.broker.public_url.rstrip("/") or broker.base_url)
        await _exit_together(gateway_server, broker_server)


async def _exit_together(*servers: ListeningServer) -> None:
    """When one server stops (a signal, a failure), stop the others too."""
    while not any(s.should_exit for s in servers):
        await anyio.sleep(0.2)
    for server in servers:
        server.should_exit = True
