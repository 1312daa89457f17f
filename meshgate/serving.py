"""A uvicorn server that says when it is listening and on which port (for `--port 0`, tests, benches)."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Generator

import anyio
import uvicorn


class ListeningServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, announce_path: str | None = None, label: str = "gateway") -> None:
        super().__init__(config)
        self._label = label
        self._listening: anyio.Event | None = None
        self.port = 0
        self._announce_path = announce_path

    own_signals = True
    """False: this server installs no SIGINT/SIGTERM handlers; whoever runs it stops it (`should_exit`)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if not self.own_signals:
            yield
            return
        with super().capture_signals():
            yield

    @property
    def listening(self) -> anyio.Event:
        """Set once bound; created on first use because an anyio Event needs a running event loop."""
        if self._listening is None:
            self._listening = anyio.Event()
        return self._listening

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        for server in self.servers:
            for sock in server.sockets:
                host, self.port = sock.getsockname()[:2]
                if self._announce_path is not None:
                    print(
                        f"meshgate {self._label} listening on http://{host}:{self.port}{self._announce_path}",
                        flush=True,
                    )
        self.listening.set()
