"""The gateway serving its decisions from OPA's Go evaluator (`policy.engine: opa`), end to end."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp.shared.exceptions import MCPError

from tests.e2e.gateway_harness import config_for, echo_upstream, health, notes_upstream, running_gateway

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


async def test_a_gateway_on_opa_allows_denies_with_reasons_and_reports_its_engine(
    tmp_path: Path, opa_library: Path
) -> None:
    config = config_for(
        tmp_path,
        [notes_upstream(tmp_path), echo_upstream()],
        policy={"engine": "opa", "opa_library": str(opa_library)},
    )
    async with running_gateway(config, tmp_path / "registry.db") as gw:
        async with gw.client(gw.api_key("acme", "alice", ["editor"])) as client:
            tools = sorted(t.name for t in (await client.list_tools()).tools)
            added = await client.call_tool("notes_add_note", {"title": "t", "body": "on opa"})
            with pytest.raises(MCPError) as info:
                await client.call_tool("notes_search_notes", {"query": "x", "limit": 80})
        status = await health(gw.base)

    assert tools == ["notes_add_note", "notes_delete_note", "notes_read_note", "notes_search_notes"]
    assert not added.is_error
    assert info.value.code == -32030
    assert info.value.data is not None and "exceeds the maximum 50" in str(info.value.data)
    assert status["policy"]["engine"] == "opa"
