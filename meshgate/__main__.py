"""The `meshgate` command line. The only module that reads the process environment."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from meshgate.config import Config, load_config, registry_url
from meshgate.errors import MeshError

DEFAULT_CONFIG = "meshgate.yaml"


def build_parser() -> argparse.ArgumentParser:
    from meshgate.commands import agents, audit, keys, node, nodes, policy, servers, up, usage

    parser = argparse.ArgumentParser(
        prog="meshgate",
        description="meshgate: a governed mesh for AI agents (MCP gateway, registry, policy, audit).",
    )
    parser.add_argument(
        "-c",
        "--config",
        default=None,
        help=f"config file (YAML or TOML); default: $MESHGATE_CONFIG, else ./{DEFAULT_CONFIG} if present, "
        "else embedded defaults",
    )
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    sub = parser.add_subparsers(dest="command", required=True)
    up.add_parser(sub)
    servers.add_parser(sub)
    agents.add_parser(sub)
    audit.add_parser(sub)
    usage.add_parser(sub)
    nodes.add_parser(sub)
    keys.add_parser(sub)
    keys.add_tenants_parser(sub)
    policy.add_parser(sub)
    node.add_parser(sub)
    return parser


def config_path(arg: str | None, environ: dict[str, str]) -> Path | None:
    if arg:
        return Path(arg)
    if environ.get("MESHGATE_CONFIG"):
        return Path(environ["MESHGATE_CONFIG"])
    default = Path(DEFAULT_CONFIG)
    return default if default.exists() else None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.log_level != "debug":  # httpx logs every upstream request at INFO: debug detail for a gateway
        for name in ("httpx", "httpx2"):  # a2a-sdk's client and mcp's
            logging.getLogger(name).setLevel(logging.WARNING)
    environ = dict(os.environ)
    try:
        config: Config = load_config(config_path(args.config, environ), environ)
        from registry import open_store

        store = open_store(registry_url(config))
        try:
            return int(args.handler(args, store, config))
        finally:
            store.close()
    except MeshError as exc:
        print(f"meshgate: error [{exc.code}]: {exc.detail}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
