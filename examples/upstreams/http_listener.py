"""Serve an example's ASGI app on a pre-bound socket and announce its URL.

Port 0 picks a free port. The socket is bound and listening before the URL line is printed,
so a parent process may connect as soon as it reads that line: uvicorn accepts the queued
connections once the app's lifespan has started.
"""

from __future__ import annotations

import socket

import uvicorn
from starlette.types import ASGIApp

MCP_PATH = "/mcp"


def bind_listener(host: str, port: int) -> socket.socket:
    """Bind and listen on `host:port`; port 0 asks the kernel for a free port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must be IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say so, and without it
    # Nagle holds each response body until the client's delayed ACK (~40 ms per request).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def mcp_url(sock: socket.socket) -> str:
    """The streamable-HTTP endpoint URL for a bound listener."""
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}{MCP_PATH}"


def serve(app: ASGIApp, *, name: str, host: str, port: int, log_level: str = "warning") -> None:
    """Run `app` until interrupted, first printing `<name> listening on <url>` as stdout's first line."""
    sock = bind_listener(host, port)
    print(f"{name} listening on {mcp_url(sock)}", flush=True)
    config = uvicorn.Config(app, log_level=log_level, lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])
