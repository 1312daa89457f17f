"""Build the `mcp` SDK client transport for one upstream: stdio child or streamable HTTP.

The SDK speaks both transports; this module only turns a registry record into its arguments, and
starts the optional `launch` process of an HTTP upstream (the example server `meshgate up` runs).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
from mcp import StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from meshgate.config import resolve_argv
from meshgate.processes import default_environment, supervised_process
from registry.models import UpstreamServer


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

    Supervised by `meshgate.processes`: its own session, stopped (terminate, then kill) when the
    context closes, so no child outlives the gateway.
    """
    if not server.launch:
        yield
        return
    env = None if not server.env else {**default_environment(), **server.env}
    argv = resolve_argv(server.launch, base_dir)
    async with supervised_process(f"upstream {server.name}", argv, cwd=base_dir or None, env=env):
        yield
