"""Child processes that `meshgate up` starts (HTTP upstreams, example agents) and always stops.

Each child gets its own session, so Ctrl-C in the terminal reaches meshgate only; meshgate then stops
the child deliberately when the context closes: terminate, wait up to 5 s, kill. No child outlives it.
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import AsyncGenerator, Mapping
from contextlib import asynccontextmanager

import anyio
from anyio.abc import Process

logger = logging.getLogger(__name__)

STOP_GRACE_S = 5.0


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


def default_environment() -> dict[str, str]:
    """The few inherited variables a child needs (PATH, HOME, …), without meshgate's own secrets."""
    from mcp.client.stdio import get_default_environment  # the SDK's list, the one stdio upstreams get

    return get_default_environment()
