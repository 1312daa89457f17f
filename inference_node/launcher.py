"""What `meshgate up` does for the config's `inference:` section: launch the nodes, front the models.

Each node is a supervised child (`meshgate node ...`, `meshgate.processes.supervise_forever`: restarted
with capped exponential backoff when it exits) that registers itself in the registry; its state
(`running`, or `restarting` with the exit code and restart count) is under `nodes` on the broker's
`/healthz`. Each model in `inference.models` becomes, beside the configured ones, an upstream `<id>`
(the stdio MCP server of `inference_node/mcp_server.py`, so the gateway federates tool `<id>_generate`)
and an agent `<id>` the broker launches and registers (`inference_node/a2a_agent.py`). Both fronts
route through the registry's nodes, so they start at once and answer `node_unavailable` until a node
is up.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import anyio
from anyio.abc import Process, TaskStatus

from inference_node.front import front_arguments
from meshgate.config import AgentConfig, Config, InferenceNodeConfig, UpstreamConfig, registry_url
from meshgate.errors import ConfigError
from meshgate.processes import RESTART_BACKOFF, Backoff, Exited, default_environment, supervise_forever

logger = logging.getLogger(__name__)


def with_model_fronts(config: Config) -> Config:
    """`config` plus an upstream and an agent for each model of an enabled `inference:` section.

    Raises:
        ConfigError: a model id is already the name of a configured upstream or agent.
    """
    inference = config.inference
    if not inference.enabled or not inference.models:
        return config
    url = registry_url(config)
    taken_upstreams = {u.name for u in config.upstreams}
    taken_agents = {a.id for a in config.agents}
    upstreams = list(config.upstreams)
    agents = list(config.agents)
    for model in inference.models:
        arguments = front_arguments(inference, config.telemetry, url, model.id)
        if model.tool:
            if model.id in taken_upstreams:
                raise ConfigError(f"inference.models: {model.id!r} is already the name of an upstream")
            command = ("python", "-m", "inference_node.mcp_server", *arguments)
            upstreams.append(UpstreamConfig(name=model.id, transport="stdio", command=command))
        if model.agent_port is not None and config.broker.enabled:
            if model.id in taken_agents:
                raise ConfigError(f"inference.models: {model.id!r} is already the id of an agent")
            host = config.broker.host
            launch = ("python", "-m", "inference_node.a2a_agent", *arguments, "--organization", model.organization)
            launch += ("--host", host, "--port", str(model.agent_port))
            agents.append(
                AgentConfig(
                    id=model.id,
                    card_url=f"http://{host}:{model.agent_port}",
                    launch=launch,
                    organization=model.organization,
                )
            )
    return config.model_copy(update={"upstreams": tuple(upstreams), "agents": tuple(agents)})


def model_agents(config: Config) -> frozenset[str]:
    """The agent ids `with_model_fronts` adds: the broker meters the token usage they report."""
    inference = config.inference
    if not inference.enabled or not config.broker.enabled:
        return frozenset()
    return frozenset(m.id for m in inference.models if m.agent_port is not None)


@dataclass
class NodeState:
    """What `/healthz` shows for one launched node."""

    model: str
    engine: str
    state: Literal["starting", "running", "restarting"] = "starting"
    pid: int | None = None
    error: str = ""
    exit_code: int | None = None
    """The last exit's code (a node that exited)."""
    restarts: int = 0


class NodeLauncher:
    """Runs the config's enabled nodes as children, restarted when they exit, for as long as `running()` is open."""

    def __init__(self, config: Config, *, backoff: Backoff = RESTART_BACKOFF) -> None:
        self._config = config
        self._backoff = backoff
        self._nodes = [n for n in config.inference.nodes if n.enabled] if config.inference.enabled else []
        self.states = {n.name: NodeState(model=n.model, engine=n.engine) for n in self._nodes}

    def health(self) -> dict[str, object]:
        return {name: asdict(state) for name, state in self.states.items()}

    @asynccontextmanager
    async def running(self) -> AsyncGenerator[None, None]:
        """Every node has been started when the context opens; all are stopped when it closes."""
        if not self._nodes:
            yield
            return
        async with anyio.create_task_group() as tg:
            for node in self._nodes:
                await tg.start(self._supervise, node)
            try:
                yield
            finally:
                tg.cancel_scope.cancel()

    async def _supervise(self, node: InferenceNodeConfig, *, task_status: TaskStatus[Process]) -> None:
        state = self.states[node.name]

        async def on_start(process: Process) -> None:
            state.state, state.pid = "running", process.pid

        def on_exit(exited: Exited) -> None:
            state.state, state.exit_code, state.restarts = "restarting", exited.code, exited.restarts
            state.error = f"exited with code {exited.code}; restart {exited.restarts} in {exited.delay_s:g} s"

        await supervise_forever(
            f"node {node.name}",
            self._argv(node),
            cwd=self._config.base_dir or None,
            env=self._environment(),
            on_start=on_start,
            on_exit=on_exit,
            backoff=self._backoff,
            task_status=task_status,
        )

    def _environment(self) -> dict[str, str]:
        """What a node needs of this config, whichever file it came from: the registry and the telemetry."""
        telemetry = self._config.telemetry
        return {
            **default_environment(),
            "MESHGATE_REGISTRY_URL": registry_url(self._config),
            "MESHGATE_TELEMETRY_EXPORTER": telemetry.exporter,
            "MESHGATE_TELEMETRY_OTLP_ENDPOINT": telemetry.otlp_endpoint,
        }

    def _argv(self, node: InferenceNodeConfig) -> list[str]:
        argv = [sys.executable, "-m", "meshgate", "node", "--name", node.name, "--model", node.model]
        argv += ["--engine", node.engine, "--host", node.host, "--port", str(node.port)]
        argv += ["--capacity", str(node.capacity)]
        if node.weights:
            argv += ["--weights", str(Path(self._config.base_dir, node.weights))]
        return argv
