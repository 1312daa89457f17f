"""A child process that announces itself on its first stdout line (servers, nodes, agents), for e2e tests."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import asynccontextmanager

import anyio
from anyio.abc import Process


@asynccontextmanager
async def announced(
    argv: Sequence[str], *, env: Mapping[str, str] | None = None, timeout_s: float = 60
) -> AsyncGenerator[tuple[Process, str], None]:
    """Start `argv`, wait (bounded) for its first stdout line, yield the process and that line; stop it after."""
    process = await anyio.open_process(
        list(argv), stdout=subprocess.PIPE, stderr=None, env=None if env is None else dict(env)
    )
    try:
        assert process.stdout is not None
        with anyio.fail_after(timeout_s):
            line = b""
            while not line.endswith(b"\n"):
                line += await process.stdout.receive(1)
        yield process, line.decode().strip()
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):  # it may have just exited (the crash tests)
                process.terminate()
            with anyio.move_on_after(10):
                await process.wait()
        if process.returncode is None:
            process.kill()
            await process.wait()
        await process.aclose()
