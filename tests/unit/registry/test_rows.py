from __future__ import annotations

from registry.models import ToolRecord
from registry.rows import merge_tools


def tool(name: str, digest: str) -> ToolRecord:
    return ToolRecord(
        server="ignored", name=name, description="", input_schema={}, output_schema=None, definition_hash=digest
    )


def test_an_unchanged_tool_keeps_its_first_seen() -> None:
    records, changed = merge_tools({"read": ("h1", "T0")}, "fs", [tool("read", "h1")], "T1")
    assert changed == []
    assert [(r.server, r.first_seen, r.last_seen) for r in records] == [("fs", "T0", "T1")]


def test_a_changed_definition_is_reported_and_dated_anew() -> None:
    records, changed = merge_tools({"read": ("h1", "T0")}, "fs", [tool("read", "h2")], "T1")
    assert changed == ["read"]
    assert records[0].first_seen == "T1"


def test_new_and_removed_tools_are_not_reported_as_changed() -> None:
    records, changed = merge_tools({"gone": ("h1", "T0")}, "fs", [tool("new", "h9")], "T1")
    assert changed == []
    assert [r.name for r in records] == ["new"]


def test_a_repeated_name_keeps_the_last_definition() -> None:
    records, _ = merge_tools({}, "fs", [tool("read", "h1"), tool("read", "h2")], "T1")
    assert [r.definition_hash for r in records] == ["h2"]
