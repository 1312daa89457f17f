"""A copy-paste MCP client for a running gateway, built on the official `mcp` SDK client.

    python examples/client.py tools
    python examples/client.py call toolbox_calculate '{"expression": "6*7"}'
    python examples/client.py --key mgk_... call notes_add_note '{"title": "t", "body": "b"}'
    python examples/client.py resources | read 'toolbox+toolbox://units' | prompts | prompt NAME '{...}'

Prints each result as JSON; an MCP error prints `error <code>: <message>` and its data, and exits 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, cast

import anyio
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Talk to a meshgate gateway with the mcp SDK client.")
    parser.add_argument("--url", default="http://127.0.0.1:8900/mcp", help="gateway endpoint (default: %(default)s)")
    parser.add_argument("--key", default="", help="API key or JWT, sent as a bearer token (default: anonymous)")
    parser.add_argument("--legacy", action="store_true", help="speak the handshake-era protocol (2025-11-25)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("tools", help="list the tools this principal may see")
    commands.add_parser("resources", help="list resources")
    commands.add_parser("prompts", help="list prompts")
    call = commands.add_parser("call", help="call a tool")
    call.add_argument("name")
    call.add_argument("arguments", nargs="?", default="{}", help="JSON object")
    read = commands.add_parser("read", help="read a resource by its namespaced URI")
    read.add_argument("uri")
    prompt = commands.add_parser("prompt", help="get a prompt")
    prompt.add_argument("name")
    prompt.add_argument("arguments", nargs="?", default="{}", help="JSON object of strings")
    return parser


async def _run(args: argparse.Namespace) -> Any:
    headers = {"Authorization": f"Bearer {args.key}"} if args.key else {}
    async with create_mcp_http_client(headers=headers) as http:
        transport = streamable_http_client(args.url, http_client=http)
        async with Client(transport, mode="legacy" if args.legacy else "auto", cache=None) as client:
            match args.command:
                case "tools":
                    return [{"name": t.name, "description": t.description} for t in (await client.list_tools()).tools]
                case "resources":
                    return [{"uri": r.uri, "name": r.name} for r in (await client.list_resources()).resources]
                case "prompts":
                    return [
                        {"name": p.name, "description": p.description} for p in (await client.list_prompts()).prompts
                    ]
                case "call":
                    return await client.call_tool(args.name, json.loads(args.arguments))
                case "read":
                    return await client.read_resource(args.uri)
                case _:
                    return await client.get_prompt(args.name, json.loads(args.arguments))


def main() -> int:
    args = _parser().parse_args()
    try:
        result = anyio.run(_run, args)
    except (MCPError, BaseExceptionGroup) as raised:
        exc = _first_leaf(raised)
        if not isinstance(exc, MCPError):
            raise
        print(f"error {exc.error.code}: {exc.error.message}", file=sys.stderr)
        if exc.error.data is not None:
            print(json.dumps(exc.error.data, indent=2), file=sys.stderr)
        return 1
    if hasattr(result, "model_dump"):
        result = result.model_dump(mode="json", by_alias=True, exclude_none=True)
    print(json.dumps(result, indent=2))
    return 0


def _first_leaf(exc: BaseException) -> BaseException:
    """The SDK raises from inside task groups, so an MCP error arrives wrapped, possibly more than once."""
    while isinstance(exc, BaseExceptionGroup):
        group = cast(BaseExceptionGroup[BaseException], exc)
        if len(group.exceptions) != 1:
            return group
        exc = group.exceptions[0]
    return exc


if __name__ == "__main__":
    raise SystemExit(main())
