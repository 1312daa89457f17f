"""Child processes that `meshgate up` starts (HTTP upstreams, agents, inference nodes) and always stops.

Each child gets its own session, so Ctrl-C in the terminal reaches meshgate only; meshgate then stops
the child deliberately when the context closes: terminate, wait up to 5 s, kill. No child outlives it.
`supervise_forever` restarts a child that exits, with capped exponential backoff (`Backoff`).
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractContextManager, asynccontextmanager, nullcontext
from dataclasses import dataclass
from typing import NoReturn

import anyio
from anyio.abc import Process, TaskStatus

logger = logging.getLogger(__name__)

STOP_GRACE_S = 5.0


@dataclass(frozen=True, slots=True)
class Backoff:
    """How long `supervise_forever` waits before each restart: `first_s`, doubling up to `max_s`, and back
    to `first_s` once a child has stayed up `reset_after_s` (a crash after a long run is not a crash loop)."""

    first_s: float = 0.5
    max_s: float = 30.0
    reset_after_s: float = 60.0


RESTART_BACKOFF = Backoff()


@dataclass(frozen=True, slots=True)
class Exited:
    """One exit of a supervised child: its exit code, the restarts so far (this one included), the delay."""

    code: int
    restarts: int
    delay_s: float


@asynccontextmanager
async def supervised_process(
    label: str,
    argv: list[str],
    *,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
    stdout: int | None = subprocess.DEVNULL,
) -> AsyncGenerator[Process, None]:
    """Run `argv` for as long as the context is open; yields the process.

    Args:
        label: names the child in the log, e.g. `upstream toolbox`.
        env: the child's whole environment; None inherits meshgate's.
        stdout: DEVNULL (default), or None to share meshgate's. stderr is always shared, so a child's
            errors reach the operator's terminal.
    """
    process = await anyio.open_process(
        argv, cwd=cwd, stdout=stdout, stderr=None, start_new_session=True, env=None if env is None else dict(env)
    )
    logger.info("launched %s (pid %d): %s", label, process.pid, " ".join(argv))
    try:
        yield process
    finally:
        with anyio.CancelScope(shield=True):
            await stop(process)


async def stop(process: Process) -> None:
    """Terminate, wait up to `STOP_GRACE_S`, kill; idempotent."""
    if process.returncode is None:
        process.terminate()
        with anyio.move_on_after(STOP_GRACE_S):
            await process.wait()
        if process.returncode is None:
            process.kill()
            await process.wait()
    await process.aclose()


async def supervise_forever(
    label: str,
    argv: Sequence[str],
    *,
    cwd: str | None = None,
    env: Mapping[str, str] | Callable[[], AbstractContextManager[Mapping[str, str]]] | None = None,
    on_start: Callable[[Process], Awaitable[None]] | None = None,
    on_exit: Callable[[Exited], None] | None = None,
    backoff: Backoff = RESTART_BACKOFF,
    task_status: TaskStatus[Process] = anyio.TASK_STATUS_IGNORED,
) -> NoReturn:
    """Run `argv` as a `supervised_process` and start it again each time it exits, until cancelled.

    Cancelling stops the running child (or the wait before a restart) at once; no child outlives it.
    With `task_group.start()`, returns the first child once it has been started.

    Args:
        label: names the child in the log, e.g. `agent ledger`.
        env: the child's whole environment (None inherits meshgate's), or a factory of a context manager
            giving it for one run: entered before each start and left once that run's child has stopped
            (e.g. a secret minted per run and revoked with it).
        on_start: awaited with each new child (e.g. to register it once it answers); the child's exit is
            awaited after it returns.
        on_exit: called after each exit, before the backoff delay.
    """
    started = False
    restarts = 0
    delay = backoff.first_s
    while True:
        with env() if callable(env) else nullcontext(env) as run_env:
            async with supervised_process(label, list(argv), cwd=cwd, env=run_env) as process:
                up_since = anyio.current_time()
                if not started:
                    started = True
                    task_status.started(process)
                if on_start is not None:
                    await on_start(process)
                code = await process.wait()
        if anyio.current_time() - up_since >= backoff.reset_after_s:
            delay = backoff.first_s
        restarts += 1
        logger.warning("%s exited with code %s; restart %d in %.1f s", label, code, restarts, delay)
        if on_exit is not None:
            on_exit(Exited(code, restarts, delay))
        await anyio.sleep(delay)
        delay = min(delay * 2, backoff.max_s)


def default_environment() -> dict[str, str]:
    """The few inherited variables a child needs (PATH, HOME, …), without meshgate's own secrets."""
    from mcp.client.stdio import get_default_environment  # the SDK's list, the one stdio upstreams get

    return get_default_environment()
