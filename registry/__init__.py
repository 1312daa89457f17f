"""The registry: upstream servers, their tools' definition hashes, A2A agents and the owners of tasks relayed
to them, inference nodes, tenants, API keys, generated secrets, the audit log and the usage (metering) log.

`open_store(url)` picks the store; `AuditLog` and `UsageMeter` batch appends off the event loop.
"""

from __future__ import annotations

from pathlib import Path

from meshgate.errors import ConfigError
from registry.audit import AuditLog
from registry.clock import canonical_time, format_time, parse_since, utc_now
from registry.hashing import tool_definition_hash
from registry.models import (
    AgentRecord,
    ApiKey,
    AuditQuery,
    AuditRecord,
    BrokerTask,
    InferenceNode,
    Tenant,
    ToolRecord,
    Transport,
    UpstreamServer,
    UsageQuery,
    UsageRecord,
)
from registry.postgres_store import PostgresStore
from registry.sqlite_store import SqliteStore
from registry.store import RegistryStore
from registry.usage import UsageMeter

__all__ = [
    "AgentRecord",
    "ApiKey",
    "AuditLog",
    "AuditQuery",
    "AuditRecord",
    "BrokerTask",
    "InferenceNode",
    "PostgresStore",
    "RegistryStore",
    "SqliteStore",
    "Tenant",
    "ToolRecord",
    "Transport",
    "UpstreamServer",
    "UsageMeter",
    "UsageQuery",
    "UsageRecord",
    "canonical_time",
    "format_time",
    "open_store",
    "parse_since",
    "tool_definition_hash",
    "utc_now",
]


def open_store(url: str, base_dir: str | Path = "") -> RegistryStore:
    """Open the store a registry URL names.

    `sqlite:///relative.db`, `sqlite:////absolute.db` or a bare path: SQLite, relative paths
    resolved against `base_dir` (default: the working directory). `postgresql://...` or
    `postgres://...`: PostgreSQL.

    Raises:
        ConfigError: an unsupported URL scheme.
        RegistryError: the store cannot be opened.
        MissingDependency: PostgreSQL without the `postgres` extra.
    """
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresStore(url)
    if url.startswith("sqlite://"):
        # SQLAlchemy's convention: three slashes then the path, so an absolute path has four.
        path = url.removeprefix("sqlite://").removeprefix("/")
        if not path:
            raise ConfigError(f"registry URL {url!r} names no file")
    elif "://" in url:
        raise ConfigError(f"unsupported registry URL {url!r}: use sqlite:///path or postgresql://...")
    else:
        path = url
    if path != ":memory:" and not Path(path).is_absolute() and base_dir:
        path = str(Path(base_dir, path))
    return SqliteStore(path)
