"""A conformance-style upstream: what the official MCP conformance suite expects of a server.

Serves the tools (see `conformance_tools`), resources, prompts and completions named by the server
scenarios of `@modelcontextprotocol/conformance` 0.1.16, the handshake-era `logging/setLevel` and
`resources/subscribe`, and resumable SSE streams. Run
`python examples/upstreams/conformance_server.py --port 0`; stdout's first line is the URL.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import Any

from mcp.server.context import ServerRequestContext
from mcp.server.mcpserver import Image, MCPServer
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp_types import (
    Completion,
    CompletionArgument,
    CompletionContext,
    EmptyResult,
    PromptReference,
    ResourceTemplateReference,
    SetLevelRequestParams,
    SubscribeRequestParams,
    UnsubscribeRequestParams,
)

if __package__ in (None, ""):  # run as a script: make the `examples` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from examples.upstreams.conformance_tools import add_tools, json_schema_tool, text_resource  # noqa: E402
from examples.upstreams.event_store import InMemoryEventStore  # noqa: E402
from examples.upstreams.http_listener import serve  # noqa: E402
from examples.upstreams.sample_media import red_pixel_png  # noqa: E402

RETRY_INTERVAL_MS = 1000
COMPLETIONS = {"arg1": ["paris", "park", "party"], "arg2": ["red", "green", "blue"]}


def add_resources(server: MCPServer) -> None:
    """Register the resources the `resources-*` scenarios read."""

    @server.resource("test://static-text", name="static-text", mime_type="text/plain")
    def static_text() -> str:
        """A fixed text resource."""
        return "This is the content of the static text resource."

    @server.resource("test://static-binary", name="static-binary", mime_type="image/png")
    def static_binary() -> bytes:
        """A fixed binary resource: a 1x1 red PNG."""
        return red_pixel_png()

    @server.resource("test://template/{id}/data", name="template-data", mime_type="application/json")
    def template_data(id: str) -> str:  # the suite names the template variable `id`
        """Data for one id, substituted from the URI."""
        return json.dumps({"id": id, "templateTest": True, "data": f"Data for ID: {id}"})

    @server.resource("test://watched-resource", name="watched-resource", mime_type="text/plain")
    def watched_resource() -> str:
        """A resource clients may subscribe to."""
        return "Watched resource content."


def add_prompts(server: MCPServer) -> None:
    """Register the prompts the `prompts-*` scenarios get, and completion for their arguments."""

    @server.prompt()
    def test_simple_prompt() -> str:
        """A prompt without arguments."""
        return "This is a simple prompt for testing."

    @server.prompt()
    def test_prompt_with_arguments(arg1: str, arg2: str) -> str:
        """A prompt that substitutes two arguments."""
        return f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"

    @server.prompt()
    def test_prompt_with_embedded_resource(resourceUri: str) -> list[Any]:  # the suite names it `resourceUri`
        """A prompt that embeds the resource named by resourceUri."""
        return [
            text_resource(resourceUri, "Embedded resource content for testing."),
            "Please process the embedded resource above.",
        ]

    @server.prompt()
    def test_prompt_with_image() -> list[Any]:
        """A prompt that carries an image."""
        return [Image(data=red_pixel_png(), format="png"), "Please analyze the image above."]

    @server.completion()
    async def complete(
        ref: PromptReference | ResourceTemplateReference,
        argument: CompletionArgument,
        context: CompletionContext | None,
    ) -> Completion:
        prefix = argument.value.casefold()
        values = [value for value in COMPLETIONS.get(argument.name, []) if value.startswith(prefix)]
        return Completion(values=values, total=len(values), has_more=False)


def add_legacy_methods(server: MCPServer) -> None:
    """Serve `logging/setLevel` and `resources/(un)subscribe` to handshake-era clients.

    The 2026-07-28 revision removed these methods, so MCPServer has no decorator for them; the SDK's
    `MethodBinding` docs point to the low-level `Server.add_request_handler` instead. The level is
    accepted but not applied: handshake-era sessions in this SDK deliver every level.
    """
    subscribed: set[str] = set()

    async def set_level(ctx: ServerRequestContext[Any], params: SetLevelRequestParams) -> EmptyResult:
        return EmptyResult()

    async def subscribe(ctx: ServerRequestContext[Any], params: SubscribeRequestParams) -> EmptyResult:
        subscribed.add(params.uri)
        return EmptyResult()

    async def unsubscribe(ctx: ServerRequestContext[Any], params: UnsubscribeRequestParams) -> EmptyResult:
        subscribed.discard(params.uri)
        return EmptyResult()

    lowlevel = server._lowlevel_server  # pyright: ignore[reportPrivateUsage]
    lowlevel.add_request_handler("logging/setLevel", SetLevelRequestParams, set_level)
    lowlevel.add_request_handler("resources/subscribe", SubscribeRequestParams, subscribe)
    lowlevel.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, unsubscribe)


def build_server() -> MCPServer:
    """The conformance MCP server."""
    # WARNING: the suite opens a session per scenario, and INFO would log each one.
    server = MCPServer("conformance", version="1.0.0", tools=[json_schema_tool()], log_level="WARNING")
    add_tools(server)
    add_resources(server)
    add_prompts(server)
    add_legacy_methods(server)
    return server


def main(argv: list[str] | None = None) -> None:
    """Serve the conformance fixtures over streamable HTTP."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args(argv)
    # Logging, sampling and subscriptions are deprecated in 2026-07-28 but are what the suite tests.
    warnings.simplefilter("ignore", MCPDeprecationWarning)
    app = build_server().streamable_http_app(
        host=args.host, event_store=InMemoryEventStore(), retry_interval=RETRY_INTERVAL_MS
    )
    serve(app, name="conformance", host=args.host, port=args.port)


if __name__ == "__main__":
    main()
