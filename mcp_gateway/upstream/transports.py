"""Build the `mcp` SDK client transport for one upstream: stdio child or streamable HTTP.

The SDK speaks both transports; this module only turns a registry record into its arguments, and
starts the optional `launch` process of an HTTP upstream (the example server `meshgate up` runs).
"""

from __future__ import annotations

import logging
import subprocess
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx2
from mcp import StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from meshgate.config import resolve_argv
from registry.models import UpstreamServer

logger = logging.getLogger(__name__)


def client_transport(server: UpstreamServer, base_dir: str, http: httpx2.AsyncClient | None) -> Any:
    """The `Transport` to hand to `mcp.Client`. HTTP upstreams share the gateway's own client."""
    if server.transport == "stdio":
        argv = resolve_argv(server.command, base_dir)
        params = StdioServerParameters(
            command=argv[0], args=argv[1:], env=dict(server.env) or None, cwd=server.cwd or base_dir or None
        )
        return stdio_client(params)
    return streamable_http_client(server.url, http_client=http)


@asynccontextmanager
async def launched(server: UpstreamServer, base_dir: str) -> AsyncGenerator[None, None]:
    """Run the upstream's `launch` command for as long as the context is open (no-op without one).

    The child gets its own process group so Ctrl-C reaches meshgate only, and meshgate then stops it
    deliberately: terminate, wait up to 5 s, kill. No child outlives the gateway.
    """
    if not server.launch:
        yield
        return
    argv = resolve_argv(server.launch, base_dir)
    process = await anyio.open_process(
        argv,
        cwd=base_dir or None,
        stdout=subprocess.DEVNULL,
        stderr=None,
        start_new_session=True,
        env=None if not server.env else {**_inherited_env(), **server.env},
    )
    logger.info("launched upstream %s (pid %d): %s", server.name, process.pid, " ".join(argv))
    try:
        yield
    finally:
        with anyio.CancelScope(shield=True):
            if process.returncode is None:
                process.terminate()
                with anyio.move_on_after(5):
                    await process.wait()
                if process.returncode is None:
                    process.kill()
                    await process.wait()
            await process.aclose()


def _inherited_env() -> dict[str, str]:
    from mcp.client.stdio import get_default_environment

    return get_default_environment()
