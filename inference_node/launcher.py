"""What `meshgate up` does for the config's `inference:` section: launch the nodes, front the models.

Each node is a supervised child (`meshgate node ...`, `meshgate.processes`) that registers itself in the
registry; its state is on the gateway's `/healthz`. Each model in `inference.models` becomes, beside the
configured ones, an upstream `<id>` (the stdio MCP server of `inference_node/mcp_server.py`, so the
gateway federates tool `<id>_generate`) and an agent `<id>` the broker launches and registers
(`inference_node/a2a_agent.py`). Both fronts route through the registry's nodes, so they start at once
and answer `node_unavailable` until a node is up.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncGenerator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import anyio
from anyio.abc import Process

from meshgate.config import AgentConfig, Config, InferenceNodeConfig, UpstreamConfig, registry_url
from meshgate.errors import ConfigError
from meshgate.processes import default_environment, supervised_process

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
        front = ["python", "-m", "inference_node.{}", "--model", model.id, "--registry", url]
        front += ["--routing", inference.routing]
        if model.tool:
            if model.id in taken_upstreams:
                raise ConfigError(f"inference.models: {model.id!r} is already the name of an upstream")
            command = tuple(a.format("mcp_server") for a in front)
            upstreams.append(UpstreamConfig(name=model.id, transport="stdio", command=command))
        if model.agent_port is not None and config.broker.enabled:
            if model.id in taken_agents:
                raise ConfigError(f"inference.models: {model.id!r} is already the id of an agent")
            host = config.broker.host
            launch = (*(a.format("a2a_agent") for a in front), "--organization", model.organization)
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
    state: Literal["starting", "running", "exited"] = "starting"
    pid: int | None = None
    error: str = ""


class NodeLauncher:
    """Runs the config's enabled nodes as children for as long as `running()` is open."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self._nodes = [n for n in config.inference.nodes if n.enabled] if config.inference.enabled else []
        self.states = {n.name: NodeState(model=n.model, engine=n.engine) for n in self._nodes}

    def health(self) -> dict[str, object]:
        return {name: asdict(state) for name, state in self.states.items()}

    @asynccontextmanager
    async def running(self) -> AsyncGenerator[None, None]:
        if not self._nodes:
            yield
            return
        env = {**default_environment(), "MESHGATE_REGISTRY_URL": registry_url(self._config)}
        async with AsyncExitStack() as stack, anyio.create_task_group() as tg:
            for node in self._nodes:
                argv = self._argv(node)
                process = await stack.enter_async_context(
                    supervised_process(f"node {node.name}", argv, cwd=self._config.base_dir or None, env=env)
                )
                state = self.states[node.name]
                state.pid, state.state = process.pid, "running"
                tg.start_soon(self._watch, node.name, process)
            try:
                yield
            finally:
                tg.cancel_scope.cancel()

    async def _watch(self, name: str, process: Process) -> None:
        code = await process.wait()
        state = self.states[name]
        state.state, state.error = "exited", f"exited with code {code}"
        logger.warning("node %s exited with code %s; it is not restarted", name, code)

    def _argv(self, node: InferenceNodeConfig) -> list[str]:
        argv = [sys.executable, "-m", "meshgate", "node", "--name", node.name, "--model", node.model]
        argv += ["--engine", node.engine, "--host", node.host, "--port", str(node.port)]
        argv += ["--capacity", str(node.capacity)]
        if node.weights:
            argv += ["--weights", str(Path(self._config.base_dir, node.weights))]
        return argv
