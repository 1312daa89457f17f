"""`meshgate nodes list|remove`: the registered inference nodes, their load, and how the router sees them.

Health here is what a fresh router would decide from the registry alone (heartbeat age); failures a
running router has observed live in that process (`/healthz`), not in the registry.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable

from inference_node.router import NodeRouter, RouterConfig
from meshgate.commands import SubParsers, format_table
from meshgate.config import Config
from registry.store import RegistryStore


def add_parser(subparsers: SubParsers) -> None:
    """Register `nodes` with its `list` and `remove` subcommands."""
    parser = subparsers.add_parser("nodes", help="list or remove registered inference nodes")
    sub = parser.add_subparsers(dest="nodes_command", required=True)
    listing = sub.add_parser("list", help="registered nodes with load, heartbeat age and health")
    listing.add_argument("--model", help="only nodes serving this model")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(handler=run_list)
    remove = sub.add_parser("remove", help="unregister a node (a running node registers again at its next start)")
    remove.add_argument("name")
    remove.set_defaults(handler=run_remove)


def run_list(args: argparse.Namespace, store: RegistryStore, config: Config | None = None) -> int:
    # judged as the model fronts' routers judge it
    stale_after_s = (config or Config()).inference.stale_after_s
    print(nodes_list(store, model=args.model, as_json=args.json, stale_after_s=stale_after_s))
    return 0


def run_remove(args: argparse.Namespace, store: RegistryStore, config: Config | None = None) -> int:
    store.remove_node(args.name)
    print(f"removed node {args.name}")
    return 0


def nodes_list(
    store: RegistryStore,
    model: str | None = None,
    as_json: bool = False,
    clock: Callable[[], float] = time.time,
    stale_after_s: float = RouterConfig().stale_after_s,
) -> str:
    """The nodes by name with load and health, as a table or JSON lines."""
    router = NodeRouter(RouterConfig(stale_after_s=stale_after_s), clock=clock)
    router.update_nodes(store.list_nodes(model))
    statuses = router.status()
    if as_json:
        return "\n".join(
            json.dumps(
                {
                    "name": s.node.name,
                    "model": s.node.model,
                    "engine": s.node.engine,
                    "address": s.node.address,
                    "capacity": s.node.capacity,
                    "in_flight": s.node.in_flight,
                    "queued": s.node.queued,
                    "load": round(s.load, 3),
                    "registered_at": s.node.registered_at,
                    "heartbeat_at": s.node.heartbeat_at,
                    "heartbeat_age_s": None if s.heartbeat_age_s is None else round(s.heartbeat_age_s, 1),
                    "healthy": s.healthy,
                    "reason": s.reason,
                }
            )
            for s in statuses
        )
    if not statuses:
        return "no inference nodes registered"
    headers = ("NAME", "MODEL", "ENGINE", "ADDRESS", "CAPACITY", "IN-FLIGHT", "QUEUED", "LOAD", "HEARTBEAT", "HEALTH")
    rows = [
        (
            s.node.name,
            s.node.model,
            s.node.engine,
            s.node.address,
            str(s.node.capacity),
            str(s.node.in_flight),
            str(s.node.queued),
            f"{s.load:.0%}",
            "never" if s.heartbeat_age_s is None else f"{s.heartbeat_age_s:.0f}s ago",
            "healthy" if s.healthy else s.reason,
        )
        for s in statuses
    ]
    return format_table(headers, rows)
