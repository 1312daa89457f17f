from __future__ import annotations

import re

import pytest

from mcp_gateway.catalog import (
    MAX_NAME_LENGTH,
    Catalog,
    CatalogEntry,
    ServerListing,
    namespaced_name,
    namespaced_uri,
    split_uri,
)
from meshgate.errors import PromptNotFound, ResourceNotFound, ToolNotFound


def entry(server: str, name: str) -> CatalogEntry:
    return CatalogEntry(id=namespaced_name(server, "_", name), server=server, name=name, wire=name)


def test_tool_names_are_prefixed_with_the_server_and_separator() -> None:
    assert namespaced_name("notes", "_", "search_notes") == "notes_search_notes"
    assert namespaced_name("notes", ".", "search") == "notes.search"


def test_empty_prefix_keeps_the_upstream_name() -> None:
    assert namespaced_name("", "_", "test_simple_text") == "test_simple_text"


def test_characters_outside_the_mcp_name_set_are_replaced() -> None:
    assert namespaced_name("notes", "_", "read note/v2") == "notes_read_note_v2"


def test_long_names_are_cut_to_64_characters_and_stay_distinct() -> None:
    a = namespaced_name("toolbox", "_", "x" * 80 + "a")
    b = namespaced_name("toolbox", "_", "x" * 80 + "b")
    assert len(a) == len(b) == MAX_NAME_LENGTH
    assert a != b
    assert re.fullmatch(r"[A-Za-z0-9_.-]+", a)
    assert namespaced_name("toolbox", "_", "x" * 80 + "a") == a


def test_resource_uris_round_trip_through_the_namespace() -> None:
    assert split_uri(namespaced_uri("notes", "notes://index")) == ("notes", "notes://index")


def test_a_uri_without_namespace_is_not_found() -> None:
    with pytest.raises(ResourceNotFound) as info:
        split_uri("notes://index")
    assert info.value.code == "resource_not_found"


def test_catalog_order_is_deterministic_whatever_the_listing_order() -> None:
    one = ServerListing("toolbox", tools=(entry("toolbox", "now"), entry("toolbox", "calculate")))
    two = ServerListing("notes", tools=(entry("notes", "read_note"), entry("notes", "add_note")))
    ids = [e.id for e in Catalog.build([one, two]).tools]
    assert ids == ["notes_add_note", "notes_read_note", "toolbox_calculate", "toolbox_now"]
    assert [e.id for e in Catalog.build([two, one]).tools] == ids


def test_colliding_ids_keep_the_first_server_and_are_reported() -> None:
    a = ServerListing("a", tools=(CatalogEntry(id="same", server="a", name="same", wire=1),))
    b = ServerListing("b", tools=(CatalogEntry(id="same", server="b", name="same", wire=2),))
    catalog = Catalog.build([b, a])
    assert catalog.tool("same").server == "a"
    assert catalog.collisions == ("same",)


def test_unknown_tool_and_prompt_raise_not_found() -> None:
    catalog = Catalog.build([ServerListing("notes", tools=(entry("notes", "add_note"),))])
    with pytest.raises(ToolNotFound):
        catalog.tool("notes_nope")
    with pytest.raises(PromptNotFound):
        catalog.prompt("notes_nope")


def test_unlisted_resource_under_a_known_server_resolves_to_that_server() -> None:
    catalog = Catalog.build([ServerListing("notes", tools=(entry("notes", "add_note"),))])
    resolved = catalog.resource("notes+notes://note/7")
    assert (resolved.server, resolved.name) == ("notes", "notes://note/7")
    with pytest.raises(ResourceNotFound):
        catalog.resource("ghost+ghost://x")
