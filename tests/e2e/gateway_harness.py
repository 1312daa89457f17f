"""Run a real gateway on 127.0.0.1:0 inside the test's event loop, with real upstream processes."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncGenerator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
import uvicorn
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from mcp_gateway.app import Gateway, build_gateway
from meshgate.config import Config
from meshgate.identity import new_api_key
from meshgate.serving import ListeningServer
from registry.sqlite_store import SqliteStore
from tests.e2e.announced import announced

ROOT = Path(__file__).parents[2]
UPSTREAMS = ROOT / "examples" / "upstreams"


@dataclass
class RunningGateway:
    url: str
    gateway: Gateway
    store: SqliteStore

    @property
    def base(self) -> str:
        return self.url.removesuffix(self.gateway.config.gateway.path)

    def api_key(self, tenant: str, subject: str, roles: Sequence[str] = ()) -> str:
        record, token = new_api_key(tenant, subject, tuple(roles))
        self.store.add_api_key(record)
        return token

    @asynccontextmanager
    async def client(self, token: str | None = None, mode: str = "auto") -> AsyncGenerator[Client, None]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with create_mcp_http_client(headers=headers) as http:
            async with Client(streamable_http_client(self.url, http_client=http), mode=mode, cache=None) as client:
                yield client


def config_for(tmp_path: Path, upstreams: list[dict[str, Any]], **sections: Any) -> Config:
    raw: dict[str, Any] = {"upstreams": upstreams, "base_dir": str(ROOT), **sections}
    raw.setdefault("gateway", {}).update({"port": 0, "refresh_interval_s": 3600})
    raw.setdefault("identity", {"allow_anonymous": True})
    return Config.model_validate(raw)


def notes_upstream(tmp_path: Path) -> dict[str, Any]:
    return {
        "name": "notes",
        "transport": "stdio",
        "command": ["python", str(UPSTREAMS / "notes_server.py"), "--db", str(tmp_path / "notes.db")],
    }


def echo_upstream() -> dict[str, Any]:
    return {
        "name": "echo",
        "transport": "stdio",
        "command": ["python", str(UPSTREAMS / "echo_server.py")],
        "timeout_s": 10,
    }


@asynccontextmanager
async def http_upstream(script: str, *args: str) -> AsyncGenerator[str, None]:
    """Start an example HTTP upstream on port 0 and yield the URL it prints."""
    argv = [sys.executable, str(UPSTREAMS / script), "--host", "127.0.0.1", "--port", "0", *args]
    async with announced(argv, timeout_s=20) as (_, line):
        yield line.rsplit(" ", 1)[-1]


@asynccontextmanager
async def running_gateway(config: Config, store_path: Path) -> AsyncGenerator[RunningGateway, None]:
    store = SqliteStore(store_path)
    gateway = build_gateway(config, store)
    server = ListeningServer(
        uvicorn.Config(
            gateway.asgi(), host="127.0.0.1", port=0, log_level="warning", lifespan="on", timeout_graceful_shutdown=2
        )
    )
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.serve)
            with anyio.fail_after(30):
                await server.listening.wait()
            yield RunningGateway(f"http://127.0.0.1:{server.port}{config.gateway.path}", gateway, store)
            server.should_exit = True
    finally:
        store.close()


async def health(base: str) -> dict[str, Any]:
    async with httpx2.AsyncClient() as http:
        response = await http.get(f"{base}/healthz")
        return json.loads(response.text)
