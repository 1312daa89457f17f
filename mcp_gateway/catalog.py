"""The governed catalog: an immutable snapshot of every upstream's tools, resources and prompts.

Pure core: no MCP types are imported here. Each entry carries the upstream's wire definition as an
opaque object (already renamed by the adapter) so list requests are served from memory without
fanning out. A new snapshot replaces the old one whole whenever any upstream's listing changes.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from meshgate.errors import PromptNotFound, ResourceNotFound, ToolNotFound

MAX_NAME_LENGTH = 64
_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.-]")

Kind = Literal["tool", "resource", "template", "prompt"]


def namespaced_name(prefix: str, separator: str, name: str) -> str:
    """`<prefix><sep><name>` in the MCP tool-name character set, at most 64 characters.

    Disallowed characters become `_`. A name that would be longer keeps its head and gets an
    8-hex-digit hash of the full name, so it stays unique and deterministic.
    """
    full = _NAME_CHARS.sub("_", f"{prefix}{separator}{name}" if prefix else name)
    if len(full) <= MAX_NAME_LENGTH:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:8]
    return f"{full[: MAX_NAME_LENGTH - 9]}_{digest}"


def namespaced_uri(server: str, uri: str) -> str:
    """`<server>+<uri>`: still a valid URI (`+` is legal in a scheme) and split back on the first `+`."""
    return f"{server}+{uri}"


def split_uri(namespaced: str) -> tuple[str, str]:
    server, sep, uri = namespaced.partition("+")
    if not sep:
        raise ResourceNotFound(f"unknown resource {namespaced!r}")
    return server, uri


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    id: str
    """The name (tools, prompts) or URI (resources) clients see."""
    server: str
    name: str
    """The upstream's own name or URI."""
    wire: object
    """The definition served to clients, already carrying `id`."""
    input_schema: Mapping[str, Any] | None = None
    matches: Callable[[str], bool] | None = None
    """Resource templates only: whether a concrete URI (in the catalog's namespace) fits the template."""
    definition_hash: str = ""
    """Tools only: the hash of the definition the upstream serves now (`registry.hashing`)."""
    pinned_hash: str = ""
    """Tools only: the hash the tool is pinned to, the one recorded when the gateway first knew it."""

    @property
    def pinned(self) -> bool:
        """Whether the tool still has the definition it is pinned to (the `require_pinned` check)."""
        return bool(self.definition_hash) and self.definition_hash == self.pinned_hash


@dataclass(frozen=True, slots=True)
class ServerListing:
    """One upstream's last successful listing, as entries already named for the catalog."""

    server: str
    tools: tuple[CatalogEntry, ...] = ()
    resources: tuple[CatalogEntry, ...] = ()
    prompts: tuple[CatalogEntry, ...] = ()
    templates: tuple[CatalogEntry, ...] = ()
    namespaced: bool = True
    """False when the server's prefix is empty: its names and URIs are served as the upstream has them."""


@dataclass(frozen=True)
class Catalog:
    tools: tuple[CatalogEntry, ...] = ()
    resources: tuple[CatalogEntry, ...] = ()
    prompts: tuple[CatalogEntry, ...] = ()
    templates: tuple[CatalogEntry, ...] = ()
    collisions: tuple[str, ...] = ()
    """Ids offered by more than one upstream; the first server in name order keeps them."""
    _index: dict[tuple[Kind, str], CatalogEntry] = field(default_factory=dict[tuple[Kind, str], CatalogEntry])
    _namespaced_servers: frozenset[str] = frozenset()

    @classmethod
    def build(cls, listings: Iterable[ServerListing]) -> Catalog:
        """Merge listings deterministically: servers in name order, entries sorted by id."""
        listings = list(listings)
        index: dict[tuple[Kind, str], CatalogEntry] = {}
        collisions: list[str] = []
        for listing in sorted(listings, key=lambda item: item.server):
            kinds = (
                ("tool", listing.tools),
                ("resource", listing.resources),
                ("template", listing.templates),
                ("prompt", listing.prompts),
            )
            for kind, entries in kinds:
                for entry in entries:
                    key: tuple[Kind, str] = (kind, entry.id)  # type: ignore[assignment]
                    if key in index:
                        collisions.append(entry.id)
                        continue
                    index[key] = entry

        def of(kind: Kind) -> tuple[CatalogEntry, ...]:
            return tuple(sorted((e for (k, _), e in index.items() if k == kind), key=lambda e: e.id))

        namespaced = frozenset(listing.server for listing in listings if listing.namespaced)
        return cls(
            of("tool"), of("resource"), of("prompt"), of("template"), tuple(sorted(set(collisions))), index, namespaced
        )

    def tool(self, tool_id: str) -> CatalogEntry:
        """Raises: ToolNotFound."""
        entry = self._index.get(("tool", tool_id))
        if entry is None:
            raise ToolNotFound(f"unknown tool {tool_id!r}", tool=tool_id)
        return entry

    def resource(self, uri: str) -> CatalogEntry:
        """A listed resource; else a URI under a namespaced server's `server+`; else one a template matches.

        Raises: ResourceNotFound.
        """
        entry = self._index.get(("resource", uri))
        if entry is not None:
            return entry
        server, sep, original = uri.partition("+")
        if sep and server in self._namespaced_servers:
            return CatalogEntry(id=uri, server=server, name=original, wire=None)
        for template in self.templates:
            if template.matches is not None and template.matches(uri):
                name = original if template.server in self._namespaced_servers else uri
                return CatalogEntry(id=uri, server=template.server, name=name, wire=None)
        raise ResourceNotFound(f"unknown resource {uri!r}", uri=uri)

    def template(self, uri_template: str) -> CatalogEntry:
        """Raises: ResourceNotFound."""
        entry = self._index.get(("template", uri_template))
        if entry is None:
            raise ResourceNotFound(f"unknown resource template {uri_template!r}", uri=uri_template)
        return entry

    def prompt(self, prompt_id: str) -> CatalogEntry:
        """Raises: PromptNotFound."""
        entry = self._index.get(("prompt", prompt_id))
        if entry is None:
            raise PromptNotFound(f"unknown prompt {prompt_id!r}", prompt=prompt_id)
        return entry
