"""Federation: the set of upstream connections and the catalog snapshot built from their listings.

Each listing is renamed into the gateway's namespace here (the adapter side of the pure catalog),
recorded in the registry with the hash of every tool definition, and swapped into a new snapshot.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import anyio
import anyio.abc
import httpx2
import mcp_types as types
from mcp.server.subscriptions import (
    InMemorySubscriptionBus,
    PromptsListChanged,
    ResourcesListChanged,
    ServerEvent,
    SubscriptionBus,
    ToolsListChanged,
)
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.uri_template import InvalidUriTemplate, UriTemplate

from mcp_gateway.catalog import Catalog, CatalogEntry, ServerListing, namespaced_name, namespaced_uri
from mcp_gateway.upstream.connection import RawListing, UpstreamConnection
from meshgate.cookies import refuse_cookies
from meshgate.errors import UpstreamUnavailable
from registry.hashing import tool_definition_hash
from registry.models import ToolRecord, UpstreamServer
from registry.store import RegistryStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class UpstreamHealth:
    name: str
    transport: str
    state: str
    protocol_version: str
    tools: int
    error: str


class Federation:
    def __init__(
        self,
        servers: Sequence[UpstreamServer],
        *,
        store: RegistryStore,
        base_dir: str,
        separator: str = "_",
        connect_timeout_s: float = 10.0,
        refresh_interval_s: float = 60.0,
        bus: SubscriptionBus | None = None,
    ) -> None:
        self.catalog = Catalog()
        self.bus: SubscriptionBus = bus or InMemorySubscriptionBus()
        """Where catalog changes are published for clients' `subscriptions/listen` streams."""
        self._store = store
        self._separator = separator
        self._listings: dict[str, ServerListing] = {}
        # The pin of each tool: its hash as recorded in the registry when this gateway started (at
        # `servers add` or by an earlier run), else as first listed in this run. It is never moved on
        # a changed definition, so `require_pinned` refuses a tool that changed under the gateway.
        self._pins: dict[tuple[str, str], str] = {(r.server, r.name): r.definition_hash for r in store.list_tools()}
        self._http: httpx2.AsyncClient = create_mcp_http_client()
        refuse_cookies(self._http.cookies.jar)  # shared by every caller: see meshgate/cookies.py
        self.connections: dict[str, UpstreamConnection] = {
            s.name: UpstreamConnection(
                s,
                base_dir=base_dir,
                on_listing=self._apply_listing,
                http=self._http,
                connect_timeout_s=connect_timeout_s,
                refresh_interval_s=refresh_interval_s,
            )
            for s in servers
            if s.enabled
        }
        # Until an upstream answers, its tools as last recorded in the registry stay listed, so a
        # gateway started while an upstream is down still shows them; calls answer upstream_unavailable.
        for connection in self.connections.values():
            recorded = store.list_tools(connection.server.name)
            if recorded:
                raw = RawListing(tuple(_tool_of(r) for r in recorded), (), ())
                self._listings[connection.server.name] = self.rename(connection.server, raw)
        self.catalog = Catalog.build(self._listings.values())

    async def run(self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Supervise every upstream; report started once each has made its first attempt."""
        try:
            async with anyio.create_task_group() as tg:
                for connection in self.connections.values():
                    tg.start_soon(connection.run, name=f"upstream:{connection.server.name}")
                for connection in self.connections.values():
                    await connection.wait_ready()
                task_status.started()
        finally:
            with anyio.CancelScope(shield=True):
                await self._http.aclose()

    def connection(self, server: str) -> UpstreamConnection:
        conn = self.connections.get(server)
        if conn is None:
            raise UpstreamUnavailable(f"upstream {server} is not connected", server=server)
        return conn

    def health(self) -> list[UpstreamHealth]:
        return [
            UpstreamHealth(
                name=c.server.name,
                transport=c.server.transport,
                state=c.state,
                protocol_version=c.protocol_version,
                tools=len(self._listings[c.server.name].tools) if c.server.name in self._listings else 0,
                error=c.last_error,
            )
            for c in sorted(self.connections.values(), key=lambda c: c.server.name)
        ]

    async def _apply_listing(self, server: UpstreamServer, raw: RawListing) -> None:
        listing = self.rename(server, raw)
        self._listings[server.name] = listing
        previous, self.catalog = self.catalog, Catalog.build(self._listings.values())
        for event in changed_lists(previous, self.catalog):
            await self.bus.publish(event)
        if self.catalog.collisions:
            logger.warning("catalog name collisions (first server wins): %s", ", ".join(self.catalog.collisions))
        records = [tool_record(server.name, t) for t in raw.tools]
        changed = await anyio.to_thread.run_sync(self._store.record_tools, server.name, records)
        if changed:
            # A changed definition after registration is how tool poisoning shows itself: say so loudly.
            logger.warning("upstream %s changed tool definitions: %s", server.name, ", ".join(changed))

    def rename(self, server: UpstreamServer, raw: RawListing) -> ServerListing:
        prefix = server.name if server.prefix is None else server.prefix

        def name_of(name: str) -> str:
            return namespaced_name(prefix, self._separator, name)

        def uri_of(uri: str) -> str:
            return namespaced_uri(server.name, uri) if prefix else uri

        hashes = {t.name: tool_record(server.name, t).definition_hash for t in raw.tools}
        tools = tuple(
            CatalogEntry(
                id=(tid := name_of(t.name)),
                server=server.name,
                name=t.name,
                wire=t.model_copy(update={"name": tid}),
                input_schema=t.input_schema,
                definition_hash=hashes[t.name],
                pinned_hash=self._pins.setdefault((server.name, t.name), hashes[t.name]),
            )
            for t in raw.tools
        )
        resources = tuple(
            CatalogEntry(
                id=(rid := uri_of(str(r.uri))),
                server=server.name,
                name=str(r.uri),
                wire=r.model_copy(update={"uri": rid}),
            )
            for r in raw.resources
        )
        templates = tuple(
            CatalogEntry(
                id=(tid := uri_of(t.uri_template)),
                server=server.name,
                name=t.uri_template,
                wire=t.model_copy(update={"uri_template": tid}),
                matches=_template_matcher(tid),
            )
            for t in raw.templates
        )
        prompts = tuple(
            CatalogEntry(
                id=(pid := name_of(p.name)), server=server.name, name=p.name, wire=p.model_copy(update={"name": pid})
            )
            for p in raw.prompts
        )
        return ServerListing(server.name, tools, resources, prompts, templates, namespaced=bool(prefix))

    def resource_id(self, server: str, uri: str) -> str:
        """The catalog URI of an upstream URI: `server+uri`, or the URI itself under an empty prefix."""
        connection = self.connections.get(server)
        namespaced = connection is None or connection.server.prefix != ""
        return namespaced_uri(server, uri) if namespaced else uri


def changed_lists(old: Catalog, new: Catalog) -> list[ServerEvent]:
    """The list-changed events between two snapshots: a list changed when any served definition did."""

    def wires(entries: tuple[CatalogEntry, ...]) -> list[object]:
        return [e.wire for e in entries]

    events: list[ServerEvent] = []
    if wires(old.tools) != wires(new.tools):
        events.append(ToolsListChanged())
    if wires(old.prompts) != wires(new.prompts):
        events.append(PromptsListChanged())
    if wires(old.resources) != wires(new.resources) or wires(old.templates) != wires(new.templates):
        events.append(ResourcesListChanged())
    return events


def _template_matcher(uri_template: str) -> Callable[[str], bool] | None:
    try:
        template = UriTemplate.parse(uri_template)
    except InvalidUriTemplate:
        logger.warning("ignoring unparseable resource template %r", uri_template)
        return None
    return lambda uri: template.match(uri) is not None


def _tool_of(record: ToolRecord) -> types.Tool:
    return types.Tool(
        name=record.name,
        description=record.description or None,
        input_schema=record.input_schema,
        output_schema=record.output_schema,
    )


def tool_record(server: str, tool: types.Tool) -> ToolRecord:
    return ToolRecord(
        server=server,
        name=tool.name,
        description=tool.description or "",
        input_schema=dict(tool.input_schema),
        output_schema=dict(tool.output_schema) if tool.output_schema is not None else None,
        definition_hash=tool_definition_hash(
            tool.name,
            tool.description or "",
            dict(tool.input_schema),
            dict(tool.output_schema) if tool.output_schema is not None else None,
        ),
    )
