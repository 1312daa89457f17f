"""The `echo` example upstream: minimal tools for tests and benchmarks, over stdio or HTTP.

Run `python examples/upstreams/echo_server.py [--transport stdio|http] [--host H] [--port N]`.
Over HTTP, `--port 0` picks a free port and the first stdout line is `echo listening on URL`.
`crash` ends the process mid-call with exit status 3, to exercise "upstream died" paths;
`add_alias` adds a tool at run time and announces it, to exercise list-changed paths.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Annotated

import anyio
from mcp.server.mcpserver import Context, MCPServer
from pydantic import Field

if __package__ in (None, ""):  # run as a script: make the `examples` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from examples.upstreams.http_listener import serve  # noqa: E402

CRASH_EXIT_CODE = 3

AliasName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,40}$", description="Name of the new tool.")]
DelayMs = Annotated[int, Field(ge=0, le=60_000, description="How long to wait before answering, in milliseconds.")]


def build_server() -> MCPServer:
    """The `echo` MCP server."""
    # WARNING keeps the SDK's per-call INFO logging out of benchmark timings.
    server = MCPServer("echo", version="1.0.0", log_level="WARNING")

    @server.tool()
    def echo(text: str) -> str:
        """Return the text unchanged."""
        return text

    @server.tool()
    async def slow_echo(text: str, delay_ms: DelayMs) -> str:
        """Return the text unchanged after waiting delay_ms milliseconds."""
        await anyio.sleep(delay_ms / 1000)
        return text

    @server.tool()
    async def add_alias(name: AliasName, ctx: Context) -> str:
        """Add a tool `name` that echoes like `echo`, and announce the changed tool list."""
        server.add_tool(_same_text, name=name, description=f"Alias of echo, added at run time as {name}.")
        await ctx.notify_tools_changed()
        return name

    @server.tool()
    def crash() -> str:
        """Terminate the server process immediately, without answering."""
        # os._exit skips cleanup and the reply, as a real crash would.
        os._exit(CRASH_EXIT_CODE)

    return server


def _same_text(text: str) -> str:
    return text


def main(argv: list[str] | None = None) -> None:
    """Serve the echo tools on stdio or streamable HTTP."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--transport", choices=("stdio", "http"), default="stdio")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="HTTP port; 0 picks a free port")
    args = parser.parse_args(argv)
    server = build_server()
    if args.transport == "stdio":
        server.run()
    else:
        serve(server.streamable_http_app(host=args.host), name="echo", host=args.host, port=args.port)


if __name__ == "__main__":
    main()
