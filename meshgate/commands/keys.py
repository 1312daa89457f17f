"""`meshgate keys` (create, list, revoke API keys) and `meshgate tenants` (add, list)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from meshgate.commands import SubParsers, format_table
from meshgate.config import Config
from meshgate.identity import new_api_key
from registry.models import Tenant
from registry.store import RegistryStore


def add_parser(subparsers: SubParsers) -> None:
    """Register `keys create|list|revoke`; `args.handler` becomes `run`."""
    keys = subparsers.add_parser("keys", help="manage API keys")
    keys.set_defaults(handler=run)
    actions = keys.add_subparsers(dest="keys_action", required=True)
    create = actions.add_parser("create", help="create a key and print its token once")
    create.add_argument("--tenant", required=True)
    create.add_argument("--subject", required=True)
    create.add_argument("--role", action="append", default=[], dest="roles", help="repeat for several roles")
    listing = actions.add_parser("list", help="list keys (never their secrets)")
    listing.add_argument("--tenant")
    revoke = actions.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("key_id")


def run(args: argparse.Namespace, store: RegistryStore, config: Config | None = None) -> int:
    """The CLI handler; `config` is unused, accepted because every handler is called with it."""
    if args.keys_action == "create":
        summary, token = keys_create(store, args.tenant, args.subject, args.roles)
        # the token alone on stdout, so `KEY=$(meshgate keys create ...)` captures it; the rest is for the person
        print(summary, file=sys.stderr)
        print(token)
    elif args.keys_action == "list":
        print(keys_list(store, args.tenant))
    else:
        print(keys_revoke(store, args.key_id))
    return 0


def add_tenants_parser(subparsers: SubParsers) -> None:
    """Register `tenants add|list`; `args.handler` becomes `run_tenants`."""
    tenants = subparsers.add_parser("tenants", help="manage tenants")
    tenants.set_defaults(handler=run_tenants)
    actions = tenants.add_subparsers(dest="tenants_action", required=True)
    add = actions.add_parser("add", help="add a tenant")
    add.add_argument("name")
    add.add_argument("--display-name", default="")
    actions.add_parser("list", help="list tenants")


def run_tenants(args: argparse.Namespace, store: RegistryStore, config: Config | None = None) -> int:
    """The CLI handler of `tenants`; `config` is unused."""
    if args.tenants_action == "add":
        print(tenants_add(store, args.name, args.display_name))
    else:
        print(tenants_list(store))
    return 0


def keys_create(store: RegistryStore, tenant: str, subject: str, roles: Sequence[str]) -> tuple[str, str]:
    """Store a new key; returns (summary, token). The token is shown this once only."""
    record, token = new_api_key(tenant, subject, roles)
    store.add_api_key(record)
    summary = (
        f"created API key {record.key_id} for {subject} in tenant {tenant}"
        f" (roles: {', '.join(record.roles) or '-'}); store the token now: it is not shown again"
    )
    return summary, token


def keys_list(store: RegistryStore, tenant: str | None = None) -> str:
    found = store.list_api_keys(tenant)
    if not found:
        return "no API keys"
    rows = [
        (k.key_id, k.tenant, k.subject, ",".join(k.roles), k.created_at, "revoked" if k.revoked else "active")
        for k in found
    ]
    return format_table(("KEY ID", "TENANT", "SUBJECT", "ROLES", "CREATED", "STATUS"), rows)


def keys_revoke(store: RegistryStore, key_id: str) -> str:
    """Raises `NotFound` for an unknown key id."""
    store.revoke_api_key(key_id)
    return f"revoked API key {key_id}"


def tenants_add(store: RegistryStore, name: str, display_name: str = "") -> str:
    """Raises `AlreadyExists`."""
    store.add_tenant(Tenant(name=name, display_name=display_name))
    return f"added tenant {name}"


def tenants_list(store: RegistryStore) -> str:
    found = store.list_tenants()
    if not found:
        return "no tenants"
    return format_table(("TENANT", "DISPLAY NAME"), [(t.name, t.display_name) for t in found])
