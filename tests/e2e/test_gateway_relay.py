"""What the gateway relays between a 2026-07-28 client and an upstream mid-call: progress and input
requests (sampling), plus argument completion and resource templates. Handshake-era clients are
covered by the official conformance suite (tests/conformance)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from tests.e2e.gateway_harness import RunningGateway, config_for, http_upstream, running_gateway

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]
ALLOW_ALL = Path(__file__).parents[1] / "conformance" / "allow_all_bundle"


@pytest.fixture
async def gw(tmp_path: Path) -> AsyncIterator[RunningGateway]:
    async with http_upstream("conformance_server.py") as url:
        upstreams = [{"name": "conf", "transport": "http", "url": url}]
        async with running_gateway(
            config_for(tmp_path, upstreams, policy={"bundle": str(ALLOW_ALL)}), tmp_path / "r.db"
        ) as running:
            yield running


def text_of(result: types.CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text


async def test_upstream_progress_reaches_the_caller(gw: RunningGateway) -> None:
    seen: list[tuple[float, float | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total))

    async with gw.client() as client:
        result = await client.call_tool("conf_test_tool_with_progress", {}, progress_callback=on_progress)
    assert not result.is_error
    assert seen == [(0, 100), (50, 100), (100, 100)]


async def test_an_upstream_sampling_request_is_answered_by_the_caller_through_the_gateway(gw: RunningGateway) -> None:
    asked: list[str] = []

    async def sample(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        content = params.messages[0].content
        asked.append(content.text if isinstance(content, types.TextContent) else "")
        return types.CreateMessageResult(
            role="assistant", model="test-llm", content=types.TextContent(type="text", text="forty-two")
        )

    async with create_mcp_http_client() as http:
        async with Client(
            streamable_http_client(gw.url, http_client=http), sampling_callback=sample, cache=None
        ) as client:
            result = await client.call_tool("conf_test_sampling", {"prompt": "meaning of life?"})
    assert asked == ["meaning of life?"]
    assert text_of(result) == "LLM response: forty-two"


async def test_resource_templates_are_listed_and_read_through_the_namespace(gw: RunningGateway) -> None:
    async with gw.client() as client:
        templates = [t.uri_template for t in (await client.list_resource_templates()).resource_templates]
        read = await client.read_resource("conf+test://template/7/data")
    assert "conf+test://template/{id}/data" in templates
    assert read.contents[0].uri == "conf+test://template/7/data"


async def test_argument_completion_is_forwarded_to_the_prompt_owner(gw: RunningGateway) -> None:
    async with gw.client() as client:
        prompts = [p.name for p in (await client.list_prompts()).prompts]
        assert "conf_test_prompt_with_arguments" in prompts
        completion = await client.complete(
            types.PromptReference(type="ref/prompt", name="conf_test_prompt_with_arguments"),
            {"name": "arg1", "value": ""},
        )
    assert isinstance(completion.completion.values, list)
