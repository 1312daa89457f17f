"""The agents of the config's `agents:` list: launched beside the broker, registered once their card answers.

For each enabled entry, `meshgate up` (once the broker listens):

1. with a `launch` command, runs the agent as a supervised child (`meshgate.processes.supervise_forever`:
   its own session, stopped when the broker stops, restarted with capped exponential backoff when it
   exits) with a minimal environment, `MESHGATE_BROKER_URL`, the entry's `env` and, with `broker_key`,
   `MESHGATE_BROKER_KEY` — an API key minted for that identity at each start and revoked once that child
   has stopped, so a key lives exactly as long as the one process that holds it;
2. polls the card URL (backing off to `MAX_POLL_INTERVAL_S`) until it answers a valid card, then
   stores the card verbatim in the registry (`cards.agent_record`), replacing an earlier record; a
   restarted agent is registered again the same way.

An agent that is slow, down or exits never stops the broker: its state is on the broker's `/healthz`
(`starting`, `registered`, `down` with the last error after `start_timeout_s`, `restarting` with the
exit code and the restart count), and one that comes up late is registered then.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncGenerator, Callable, Generator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import asdict, dataclass
from typing import Literal

import anyio
from anyio.abc import Process

from a2a_broker.cards import agent_record, card_url, fetch_card
from meshgate.config import AgentConfig, resolve_argv
from meshgate.errors import MeshError
from meshgate.identity import new_api_key
from meshgate.processes import RESTART_BACKOFF, Backoff, Exited, default_environment, supervise_forever
from registry.clock import utc_now
from registry.store import RegistryStore

logger = logging.getLogger(__name__)

FIRST_POLL_INTERVAL_S = 0.1
MAX_POLL_INTERVAL_S = 5.0
CARD_FETCH_TIMEOUT_S = 5.0


@dataclass
class AgentState:
    """What `/healthz` shows for one configured agent."""

    card_url: str
    state: Literal["starting", "registered", "down", "restarting"] = "starting"
    pid: int | None = None
    error: str = ""
    exit_code: int | None = None
    """The last exit's code (a launched agent that exited)."""
    restarts: int = 0


class AgentLauncher:
    def __init__(
        self, agents: Sequence[AgentConfig], store: RegistryStore, *, base_dir: str, backoff: Backoff = RESTART_BACKOFF
    ) -> None:
        self._agents = [a for a in agents if a.enabled]
        self._store = store
        self._base_dir = base_dir
        self._backoff = backoff
        self.states = {a.id: AgentState(card_url=card_url(a.card_url)) for a in self._agents}

    def health(self) -> dict[str, object]:
        return {agent_id: asdict(state) for agent_id, state in self.states.items()}

    @asynccontextmanager
    async def running(self) -> AsyncGenerator[Callable[[str], None], None]:
        """Yields `launch(broker_url)`, which brings every agent up in the background; on exit, the launched
        agents are stopped and their keys revoked. Open it around the servers, so that they have finished
        (lifespans and all) before the agents stop."""
        async with anyio.create_task_group() as tg:

            def launch(broker_url: str) -> None:
                for agent in self._agents:
                    tg.start_soon(self._bring_up, agent, broker_url)

            try:
                yield launch
            finally:
                tg.cancel_scope.cancel()

    async def _bring_up(self, agent: AgentConfig, broker_url: str) -> None:
        if not agent.launch:
            await self._register_when_up(agent, None)
            return
        state = self.states[agent.id]

        async def on_start(process: Process) -> None:
            state.state, state.pid = "starting", process.pid
            await self._register_when_up(agent, process)

        def on_exit(exited: Exited) -> None:
            state.state, state.exit_code, state.restarts = "restarting", exited.code, exited.restarts
            state.error = f"exited with code {exited.code}; restart {exited.restarts} in {exited.delay_s:g} s"

        await supervise_forever(
            f"agent {agent.id}",
            resolve_argv(agent.launch, self._base_dir),
            cwd=self._base_dir or None,
            env=functools.partial(self._environment, agent, broker_url),
            on_start=on_start,
            on_exit=on_exit,
            backoff=self._backoff,
        )

    @contextmanager
    def _environment(self, agent: AgentConfig, broker_url: str) -> Generator[dict[str, str]]:
        # One run's environment. Its broker key is minted now and revoked when the run's child has stopped
        # (a fresh key per start): no key outlives the process it was given to, even one that crashed.
        env = {**default_environment(), "MESHGATE_BROKER_URL": broker_url}
        key_id = ""
        if agent.broker_key is not None:
            identity = agent.broker_key
            record, token = new_api_key(identity.tenant, identity.subject, identity.roles)
            self._store.add_api_key(record)
            key_id, env["MESHGATE_BROKER_KEY"] = record.key_id, token
        env.update(agent.env)
        try:
            yield env
        finally:
            if key_id:
                self._store.revoke_api_key(key_id)

    async def _register_when_up(self, agent: AgentConfig, process: Process | None) -> None:
        state = self.states[agent.id]
        started = anyio.current_time()
        interval = FIRST_POLL_INTERVAL_S
        fetch = functools.partial(fetch_card, state.card_url, timeout_s=CARD_FETCH_TIMEOUT_S)
        while process is None or process.returncode is None:
            try:
                text = await anyio.to_thread.run_sync(fetch)
                record = agent_record(
                    agent.id, text, card_url=state.card_url, organization=agent.organization, registered_at=utc_now()
                )
            except MeshError as exc:
                state.error = exc.detail
                if state.state == "starting" and anyio.current_time() - started > agent.start_timeout_s:
                    state.state = "down"
                    logger.warning("agent %s is not serving its card yet: %s", agent.id, exc.detail)
            else:
                self._store.add_agent(record, replace=True)
                state.state, state.error = "registered", ""
                logger.info("registered agent %s (%s) from %s", agent.id, record.organization, state.card_url)
                return
            await anyio.sleep(interval)
            interval = min(interval * 2, MAX_POLL_INTERVAL_S)
