"""Register an upstream: connect once, record its tools (with definition hashes) in the registry."""

from __future__ import annotations

import anyio

from mcp_gateway.federation import tool_record
from mcp_gateway.upstream.connection import RawListing, UpstreamConnection
from meshgate.errors import UpstreamUnavailable
from registry.models import ToolRecord, UpstreamServer
from registry.store import RegistryStore


async def fetch_listing(server: UpstreamServer, base_dir: str, timeout_s: float) -> RawListing:
    """Connect (launching the server if it has a `launch` command), list, disconnect.

    Raises:
        UpstreamUnavailable: no listing within `timeout_s`; the message carries the last error.
    """
    listing: RawListing | None = None
    connection: UpstreamConnection | None = None

    async def on_listing(_: UpstreamServer, raw: RawListing) -> None:
        nonlocal listing
        listing = raw
        tg.cancel_scope.cancel()

    with anyio.move_on_after(timeout_s):
        async with anyio.create_task_group() as tg:
            connection = UpstreamConnection(
                server, base_dir=base_dir, on_listing=on_listing, connect_timeout_s=timeout_s
            )
            tg.start_soon(connection.run)
    if listing is None:
        reason = connection.last_error if connection is not None and connection.last_error else "timed out"
        raise UpstreamUnavailable(f"could not list upstream {server.name}: {reason}", server=server.name)
    return listing


async def register_server(
    store: RegistryStore, server: UpstreamServer, base_dir: str, *, timeout_s: float = 20.0, replace: bool = False
) -> list[ToolRecord]:
    """Add `server` to the registry with its current tools. Nothing is stored if it cannot be listed."""
    listing = await fetch_listing(server, base_dir, timeout_s)
    records = [tool_record(server.name, t) for t in listing.tools]
    store.add_server(server, replace=replace)
    store.record_tools(server.name, records)
    return records
