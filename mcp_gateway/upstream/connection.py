"""One supervised connection to one upstream MCP server, through the official `mcp` client.

`run()` connects (launching the server's process when it has one), lists its catalog, re-lists on
`list_changed` notifications and on a timer, and reconnects with capped backoff when the upstream
fails. While it is down the connection is *degraded*: calls fail fast with `UpstreamUnavailable`
and the last listing stays in the catalog. SDK errors are mapped to meshgate errors here.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import anyio
import httpx2
import mcp_types as types
from mcp import Client
from mcp.shared.dispatcher import ProgressFnT
from mcp.shared.exceptions import MCPError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import ValidationError

from mcp_gateway.upstream.transports import client_transport, launched
from meshgate.errors import MeshError, UpstreamError, UpstreamTimeout, UpstreamUnavailable
from registry.models import UpstreamServer

logger = logging.getLogger(__name__)

State = Literal["connecting", "ready", "degraded", "stopped"]
_LIST_CHANGED = (
    types.ToolListChangedNotification,
    types.ResourceListChangedNotification,
    types.PromptListChangedNotification,
)
_MAX_BACKOFF_S = 30.0


@dataclass(frozen=True, slots=True)
class RawListing:
    """What an upstream offers, as the SDK returned it."""

    tools: tuple[types.Tool, ...]
    resources: tuple[types.Resource, ...]
    prompts: tuple[types.Prompt, ...]
    templates: tuple[types.ResourceTemplate, ...] = ()


OnListing = Callable[[UpstreamServer, RawListing], Awaitable[None]]


class UpstreamConnection:
    def __init__(
        self,
        server: UpstreamServer,
        *,
        base_dir: str,
        on_listing: OnListing,
        http: httpx2.AsyncClient | None = None,
        connect_timeout_s: float = 10.0,
        refresh_interval_s: float = 60.0,
    ) -> None:
        self.server = server
        self.state: State = "connecting"
        self.last_error = ""
        self._base_dir = base_dir
        self._on_listing = on_listing
        self._http = http
        self._connect_timeout_s = connect_timeout_s
        self._refresh_interval_s = refresh_interval_s
        self._client: Client | None = None
        self._refresh = anyio.Event()
        self._ready = anyio.Event()

    @property
    def protocol_version(self) -> str:
        return self._client.protocol_version if self._client is not None else ""

    async def wait_ready(self) -> None:
        """Return once the first connection attempt has finished, successfully or not."""
        await self._ready.wait()

    async def run(self) -> None:
        """Supervise the connection until cancelled."""
        backoff = 0.5
        async with launched(self.server, self._base_dir):
            while True:
                try:
                    await self._serve_once()
                    backoff = 0.5
                except anyio.get_cancelled_exc_class():
                    self.state = "stopped"
                    raise
                except Exception as exc:  # an upstream may fail in any way; it must not take the gateway down
                    self._mark_degraded(exc)
                    await anyio.sleep(backoff)
                    backoff = min(backoff * 2, _MAX_BACKOFF_S)
                finally:
                    self._client = None

    async def _serve_once(self) -> None:
        # The deadline covers the handshake and first listing only; it is lifted once ready. It must
        # enclose the whole `async with` because the client's task group may not outlive a scope it opened in.
        with anyio.fail_after(self._connect_timeout_s) as connect_deadline:
            async with Client(
                client_transport(self.server, self._base_dir, self._http),
                cache=None,  # the gateway keeps its own snapshot; a second cache would serve stale lists
                message_handler=self._on_message,
                read_timeout_seconds=self.server.timeout_s,
                # Declared so upstreams may ask for input; on 2026-07-28 the request comes back as an
                # InputRequiredResult the handlers route to the caller. These run only for a handshake-era
                # upstream's mid-call requests, which arrive without saying which caller they are for.
                sampling_callback=_unroutable,
                elicitation_callback=_unroutable,
                list_roots_callback=_unroutable_roots,
            ) as client:
                self._client = client
                listing = await self._list(client)
                connect_deadline.deadline = math.inf
                self.state, self.last_error = "ready", ""
                logger.info(
                    "upstream %s ready (%s, protocol %s)",
                    self.server.name,
                    self.server.transport,
                    client.protocol_version,
                )
                await self._on_listing(self.server, listing)
                self._ready.set()
                async with anyio.create_task_group() as tg:
                    if client.protocol_version in MODERN_PROTOCOL_VERSIONS and _announces_changes(client):
                        tg.start_soon(self._listen, client)
                    while True:
                        self._refresh = anyio.Event()
                        with anyio.move_on_after(self._refresh_interval_s):
                            await self._refresh.wait()
                        with anyio.fail_after(self._connect_timeout_s):
                            listing = await self._list(client)
                        await self._on_listing(self.server, listing)

    def _mark_degraded(self, exc: BaseException) -> None:
        self.state = "degraded"
        self.last_error = _describe(exc)
        logger.warning("upstream %s degraded: %s", self.server.name, self.last_error)
        self._ready.set()

    async def _listen(self, client: Client) -> None:
        """2026-07-28 upstreams announce list changes only on a `subscriptions/listen` stream."""
        try:
            async with client.listen(
                tools_list_changed=True, prompts_list_changed=True, resources_list_changed=True
            ) as subscription:
                async for _ in subscription:
                    self._refresh.set()
        except Exception as exc:  # a lost stream is not fatal: the periodic refresh still runs
            logger.info("upstream %s change subscription ended: %s", self.server.name, _describe(exc))

    async def _on_message(self, message: Any) -> None:
        if isinstance(message, _LIST_CHANGED):
            self._refresh.set()
        elif isinstance(message, Exception):
            logger.debug("upstream %s transport error: %s", self.server.name, message)

    async def _list(self, client: Client) -> RawListing:
        caps = client.server_capabilities
        tools = await _all_pages(client.list_tools, lambda r: r.tools) if caps.tools else []
        resources = await _all_pages(client.list_resources, lambda r: r.resources) if caps.resources else []
        prompts = await _all_pages(client.list_prompts, lambda r: r.prompts) if caps.prompts else []
        templates = (
            await _all_pages(client.list_resource_templates, lambda r: r.resource_templates) if caps.resources else []
        )
        return RawListing(tuple(tools), tuple(resources), tuple(prompts), tuple(templates))

    async def call_tool(
        self,
        name: str,
        arguments: dict[str, Any] | None,
        *,
        progress: ProgressFnT | None = None,
        input_responses: types.InputResponses | None = None,
        request_state: str | None = None,
    ) -> types.CallToolResult | types.InputRequiredResult:
        """Forward one call; an `InputRequiredResult` (sampling, elicitation) comes back to the caller.

        Raises: UpstreamUnavailable, UpstreamTimeout, UpstreamError.
        """
        return await self._call(
            lambda c: c.session.call_tool(
                name,
                arguments,
                progress_callback=progress,
                input_responses=input_responses,
                request_state=request_state,
                allow_input_required=True,
            )
        )

    async def read_resource(
        self, uri: str, *, input_responses: types.InputResponses | None = None, request_state: str | None = None
    ) -> types.ReadResourceResult | types.InputRequiredResult:
        return await self._call(
            lambda c: c.session.read_resource(
                uri, input_responses=input_responses, request_state=request_state, allow_input_required=True
            )
        )

    async def get_prompt(
        self,
        name: str,
        arguments: dict[str, str] | None,
        *,
        input_responses: types.InputResponses | None = None,
        request_state: str | None = None,
    ) -> types.GetPromptResult | types.InputRequiredResult:
        return await self._call(
            lambda c: c.session.get_prompt(
                name, arguments, input_responses=input_responses, request_state=request_state, allow_input_required=True
            )
        )

    async def complete(
        self,
        ref: types.ResourceTemplateReference | types.PromptReference,
        argument: dict[str, str],
        context_arguments: dict[str, str] | None,
    ) -> types.CompleteResult:
        return await self._call(lambda c: c.complete(ref, argument, context_arguments))

    async def _call(self, op: Callable[[Client], Awaitable[Any]]) -> Any:
        client = self._client
        if client is None or self.state != "ready":
            raise UpstreamUnavailable(f"upstream {self.server.name} is {self.state}", server=self.server.name)
        try:
            with anyio.fail_after(self.server.timeout_s):
                return await op(client)
        except TimeoutError:
            raise UpstreamTimeout(
                f"upstream {self.server.name} did not answer within {self.server.timeout_s:g} s",
                server=self.server.name,
            ) from None
        except MCPError as exc:
            if exc.code == types.CONNECTION_CLOSED:
                self._refresh.set()
                raise UpstreamUnavailable(
                    f"upstream {self.server.name} closed the connection mid-call", server=self.server.name
                ) from exc
            # Upstream text stays out of the wire error; the code is enough to act on, the log has the rest.
            logger.info("upstream %s error %s: %s", self.server.name, exc.code, exc.message)
            raise UpstreamError(
                f"upstream {self.server.name} returned error {exc.code}",
                server=self.server.name,
                upstream_code=exc.code,
            ) from exc
        except (ValidationError, MeshError):
            raise
        except Exception as exc:  # transport failures surface as assorted exceptions (anyio, httpx2, OSError)
            self._refresh.set()
            raise UpstreamUnavailable(
                f"upstream {self.server.name} failed mid-call ({type(exc).__name__})", server=self.server.name
            ) from exc


async def _all_pages(fetch: Callable[..., Awaitable[Any]], items: Callable[[Any], list[Any]]) -> list[Any]:
    out: list[Any] = []
    cursor: str | None = None
    for _ in range(100):  # bounded: a misbehaving upstream cannot loop the gateway forever
        page = await fetch(cursor=cursor)
        out.extend(items(page))
        cursor = page.next_cursor
        if not cursor:
            break
    return out


async def _unroutable(context: Any, params: Any) -> types.ErrorData:  # noqa: ARG001  (the SDK's callback shape)
    return types.ErrorData(
        code=types.INVALID_REQUEST, message="meshgate relays input requests only from 2026-07-28 upstreams"
    )


async def _unroutable_roots(context: Any) -> types.ErrorData:  # noqa: ARG001
    return await _unroutable(None, None)


def _announces_changes(client: Client) -> bool:
    caps = client.server_capabilities
    return any(c is not None and c.list_changed for c in (caps.tools, caps.prompts, caps.resources))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        inner: list[BaseException] = list(exc.exceptions)  # pyright: ignore[reportUnknownMemberType, reportUnknownArgumentType]
        return "; ".join(_describe(e) for e in inner)
    if isinstance(exc, TimeoutError):
        return "timed out connecting"
    return f"{type(exc).__name__}: {exc}"[:300]
