"""`meshgate servers add|list|remove`: manage the upstream MCP servers in the registry."""

from __future__ import annotations

import argparse
import json

import anyio

from meshgate.commands import SubParsers
from meshgate.config import NAME_PATTERN, Config
from meshgate.errors import ConfigError
from registry.models import UpstreamServer
from registry.store import RegistryStore


def add_parser(subparsers: SubParsers) -> None:
    servers = subparsers.add_parser("servers", help="manage upstream MCP servers in the registry")
    sub = servers.add_subparsers(dest="servers_command", required=True)

    add = sub.add_parser(
        "add",
        help="register an upstream: connects once and records its tools with their definition hashes",
        description="Register an upstream MCP server. Give --url for streamable HTTP, or the stdio command "
        "after `--`, e.g.: meshgate servers add notes -- python examples/upstreams/notes_server.py",
    )
    add.add_argument("name", help="server name: lowercase letters, digits and '-' (the tool namespace)")
    add.add_argument("--url", default="", help="streamable-HTTP endpoint, e.g. http://127.0.0.1:8931/mcp")
    add.add_argument("--prefix", default=None, help="tool namespace (default: the name; '' for none)")
    add.add_argument("--timeout", type=float, default=30.0, help="per-call timeout in seconds (default 30)")
    add.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="HTTP header the gateway sends to this upstream (its own credentials); repeatable",
    )
    add.add_argument("--replace", action="store_true", help="overwrite an existing server of that name")
    add.add_argument("command", nargs=argparse.REMAINDER, help="stdio command, after `--`")
    add.set_defaults(handler=run_add)

    ls = sub.add_parser("list", help="list registered upstreams and their recorded tools")
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.set_defaults(handler=run_list)

    rm = sub.add_parser("remove", help="remove an upstream and its recorded tools")
    rm.add_argument("name")
    rm.set_defaults(handler=run_remove)


def run_add(args: argparse.Namespace, store: RegistryStore, config: Config) -> int:
    import re

    from mcp_gateway.registration import register_server

    if not re.match(NAME_PATTERN, args.name):
        raise ConfigError(f"server name {args.name!r} must match {NAME_PATTERN}")
    command = tuple(a for a in args.command if a != "--")
    if bool(command) == bool(args.url):
        raise ConfigError("give exactly one of --url or a stdio command after `--`")
    headers = dict(h.split("=", 1) for h in args.header)
    server = UpstreamServer(
        name=args.name,
        transport="http" if args.url else "stdio",
        command=command,
        url=args.url,
        headers=headers,
        prefix=args.prefix,
        timeout_s=args.timeout,
        cwd=config.base_dir,
    )
    records = anyio.run(lambda: register_server(store, server, config.base_dir, replace=args.replace))
    print(f"registered {server.name} ({server.transport}) with {len(records)} tools")
    for r in records:
        print(f"  {r.name:<32} {r.definition_hash[:12]}")
    return 0


def run_list(args: argparse.Namespace, store: RegistryStore, config: Config) -> int:
    servers = store.list_servers()
    tools = store.list_tools()
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "name": s.name,
                        "transport": s.transport,
                        "target": s.url or " ".join(s.command),
                        "enabled": s.enabled,
                        "tools": [{"name": t.name, "hash": t.definition_hash} for t in tools if t.server == s.name],
                    }
                    for s in servers
                ],
                indent=2,
            )
        )
        return 0
    if not servers:
        print("no upstream servers registered")
        return 0
    for s in servers:
        count = sum(1 for t in tools if t.server == s.name)
        print(f"{s.name:<16} {s.transport:<6} {count:>3} tools  {s.url or ' '.join(s.command)}")
    return 0


def run_remove(args: argparse.Namespace, store: RegistryStore, config: Config) -> int:
    store.remove_server(args.name)
    print(f"removed {args.name}")
    return 0
