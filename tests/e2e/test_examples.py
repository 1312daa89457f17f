"""The example upstream servers, driven as real processes by the real `mcp.Client`.

notes runs over stdio; toolbox, echo and conformance over streamable HTTP on 127.0.0.1:0, each
announcing its URL as the first stdout line.
"""

from __future__ import annotations

import hashlib
import json
import selectors
import subprocess
import sys
from collections.abc import AsyncIterator, Generator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx2
import pytest
from mcp import Client, MCPError, StdioServerParameters
from mcp.client.session import ClientRequestContext
from mcp_types import (
    CONNECTION_CLOSED,
    CallToolResult,
    CreateMessageRequestParams,
    CreateMessageResult,
    ElicitRequestParams,
    ElicitResult,
    TextContent,
    TextResourceContents,
)

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

UPSTREAMS = Path(__file__).parents[2] / "examples" / "upstreams"
START_TIMEOUT_S = 20


def notes_params(db: Path | None = None, *, cwd: Path | None = None, env: dict[str, str] | None = None) -> Any:
    args = [str(UPSTREAMS / "notes_server.py")] + (["--db", str(db)] if db else [])
    return StdioServerParameters(command=sys.executable, args=args, cwd=cwd, env=env)


@contextmanager
def running_example(script: str, *args: str) -> Generator[tuple[str, subprocess.Popen[str]], None, None]:
    """Start an example HTTP server on port 0; yield the URL it announces and its process."""
    command = [sys.executable, str(UPSTREAMS / script), "--host", "127.0.0.1", "--port", "0", *args]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            assert selector.select(START_TIMEOUT_S), f"{script} did not announce its URL"
        line = process.stdout.readline()
        assert " listening on http://127.0.0.1:" in line, line
        yield line.rsplit(" ", 1)[-1].strip(), process
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def text_of(result: CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, TextContent)
    return block.text


def resource_text(contents: list[Any]) -> str:
    assert isinstance(contents[0], TextResourceContents)
    return contents[0].text


# notes (stdio)


async def test_notes_tools_publish_typed_argument_schemas(tmp_path: Path) -> None:
    async with Client(notes_params(tmp_path / "notes.db")) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) == {"add_note", "search_notes", "read_note", "delete_note"}
    add = tools["add_note"].input_schema
    assert add["required"] == ["title", "body"]
    assert add["properties"]["tags"]["type"] == "array" and add["properties"]["tags"]["default"] == []
    search = tools["search_notes"].input_schema["properties"]["limit"]
    assert (search["type"], search["default"], search["maximum"]) == ("integer", 10, 100)
    assert tools["read_note"].input_schema["properties"]["note_id"]["type"] == "integer"
    assert all(tool.description and tool.output_schema for tool in tools.values())


async def test_a_note_is_found_case_insensitively_read_back_and_deleted(tmp_path: Path) -> None:
    async with Client(notes_params(tmp_path / "notes.db")) as client:
        added = await client.call_tool("add_note", {"title": "Standup", "body": "Ship it", "tags": [" ops ", "ops"]})
        await client.call_tool("add_note", {"title": "Lunch", "body": "Soup"})
        by_body = await client.call_tool("search_notes", {"query": "SHIP"})
        by_tag = await client.call_tool("search_notes", {"query": "Op"})
        read = await client.call_tool("read_note", {"note_id": 1})
        deleted = await client.call_tool("delete_note", {"note_id": 1})
        gone = await client.call_tool("read_note", {"note_id": 1})
    assert added.structured_content is not None
    assert {k: added.structured_content[k] for k in ("id", "title", "tags")} == {
        "id": 1,
        "title": "Standup",
        "tags": ["ops"],
    }
    assert by_body.structured_content == by_tag.structured_content == {"result": [added.structured_content]}
    assert read.structured_content == deleted.structured_content == added.structured_content
    assert gone.is_error and "not found" in text_of(gone)


async def test_search_returns_newest_first_up_to_the_limit(tmp_path: Path) -> None:
    async with Client(notes_params(tmp_path / "notes.db")) as client:
        for n in range(3):
            await client.call_tool("add_note", {"title": f"note {n}", "body": "same"})
        found = await client.call_tool("search_notes", {"query": "", "limit": 2})
    assert found.structured_content is not None
    assert [note["title"] for note in found.structured_content["result"]] == ["note 2", "note 1"]


async def test_notes_survive_a_server_restart(tmp_path: Path) -> None:
    db = tmp_path / "nested" / "notes.db"
    async with Client(notes_params(db)) as client:
        await client.call_tool("add_note", {"title": "kept", "body": "on disk"})
    async with Client(notes_params(db)) as client:
        found = await client.call_tool("search_notes", {"query": "kept"})
    assert found.structured_content is not None and len(found.structured_content["result"]) == 1


async def test_notes_database_comes_from_the_environment_or_defaults_under_the_working_directory(
    tmp_path: Path,
) -> None:
    env_db = tmp_path / "from-env.db"
    async with Client(notes_params(env={"NOTES_DB": str(env_db)})) as client:
        await client.call_tool("add_note", {"title": "a", "body": "b"})
    async with Client(notes_params(cwd=tmp_path)) as client:
        await client.call_tool("add_note", {"title": "a", "body": "b"})
    assert env_db.is_file() and (tmp_path / ".meshgate" / "notes.db").is_file()


async def test_notes_index_resource_and_summary_prompt_reflect_stored_notes(tmp_path: Path) -> None:
    async with Client(notes_params(tmp_path / "notes.db")) as client:
        await client.call_tool("add_note", {"title": "Gateway plan", "body": "Policy first", "tags": ["mesh"]})
        index = await client.read_resource("notes://index")
        one = await client.read_resource("notes://note/1")
        prompt = await client.get_prompt("summarize_notes", {"topic": "policy"})
        empty = await client.get_prompt("summarize_notes", {"topic": "unrelated"})
    assert index.contents[0].mime_type == "application/json"
    assert json.loads(resource_text(index.contents)) == [{"id": 1, "title": "Gateway plan"}]
    assert json.loads(resource_text(one.contents))["body"] == "Policy first"
    [message] = prompt.messages
    assert isinstance(message.content, TextContent) and "Gateway plan" in message.content.text
    assert isinstance(empty.messages[0].content, TextContent) and "no notes" in empty.messages[0].content.text


async def test_invalid_note_arguments_are_tool_errors(tmp_path: Path) -> None:
    async with Client(notes_params(tmp_path / "notes.db")) as client:
        empty_title = await client.call_tool("add_note", {"title": "", "body": "x"})
        bad_limit = await client.call_tool("search_notes", {"query": "x", "limit": 0})
    assert empty_title.is_error and bad_limit.is_error


# toolbox (streamable HTTP)


@pytest.fixture(scope="module")
def toolbox_url() -> Iterator[str]:
    with running_example("toolbox_server.py") as (url, _):
        yield url


@pytest.fixture
async def toolbox(toolbox_url: str) -> AsyncIterator[Client]:
    async with Client(toolbox_url) as client:
        yield client


async def test_toolbox_lists_its_tools_resource_and_prompt(toolbox: Client) -> None:
    tools = {tool.name: tool for tool in (await toolbox.list_tools()).tools}
    resources = [str(resource.uri) for resource in (await toolbox.list_resources()).resources]
    prompts = [prompt.name for prompt in (await toolbox.list_prompts()).prompts]
    assert set(tools) == {"calculate", "convert_units", "hash_text", "now"}
    assert tools["hash_text"].input_schema["properties"]["algorithm"]["enum"] == ["sha256", "sha1", "md5"]
    assert tools["convert_units"].input_schema["required"] == ["value", "from_unit", "to_unit"]
    assert tools["now"].input_schema["properties"]["timezone"]["default"] == "UTC"
    assert resources == ["toolbox://units"] and prompts == ["explain_calculation"]


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("6*7", 42),
        ("(2 + 3) * -4", -20),
        ("2 ** 10 // 3 % 7", 5),
        ("7 / 2", 3.5),
        ("-2 ** 2", -4),
        ("10**100", 10**100),
    ],
)
async def test_calculate_follows_python_arithmetic(toolbox: Client, expression: str, value: float) -> None:
    result = await toolbox.call_tool("calculate", {"expression": expression})
    assert not result.is_error
    assert result.structured_content == {"expression": expression, "result": value}


@pytest.mark.parametrize(
    "expression",
    [
        "__import__('os')",
        "open('/etc/passwd').read()",
        "x + 1",
        "[1, 2]",
        "9**9**9",
        "10**5000",
        "1/0",
        "(-8)**0.5",
        "2 +",
    ],
)
async def test_calculate_refuses_code_and_runaway_results_as_tool_errors(toolbox: Client, expression: str) -> None:
    result = await toolbox.call_tool("calculate", {"expression": expression})
    assert result.is_error and result.structured_content is None


@pytest.mark.parametrize(
    ("value", "source", "target", "expected"),
    [
        (1, "km", "m", 1000),
        (1, "mile", "ft", 5280),
        (1, "lb", "g", 453.59237),
        (100, "C", "fahrenheit", 212),
        (0, "K", "C", -273.15),
        (32, "F", "C", 0),
    ],
)
async def test_convert_units_handles_length_mass_and_temperature(
    toolbox: Client, value: float, source: str, target: str, expected: float
) -> None:
    result = await toolbox.call_tool("convert_units", {"value": value, "from_unit": source, "to_unit": target})
    assert result.structured_content is not None
    assert result.structured_content["result"] == pytest.approx(expected)


async def test_converting_between_dimensions_or_unknown_units_is_a_tool_error(toolbox: Client) -> None:
    mixed = await toolbox.call_tool("convert_units", {"value": 1, "from_unit": "kg", "to_unit": "m"})
    unknown = await toolbox.call_tool("convert_units", {"value": 1, "from_unit": "parsec", "to_unit": "m"})
    assert mixed.is_error and unknown.is_error


@pytest.mark.parametrize("algorithm", ["sha256", "sha1", "md5"])
async def test_hash_text_matches_hashlib(toolbox: Client, algorithm: str) -> None:
    result = await toolbox.call_tool("hash_text", {"text": "héllo", "algorithm": algorithm})
    expected = hashlib.new(algorithm, "héllo".encode()).hexdigest()
    assert result.structured_content == {"algorithm": algorithm, "hexdigest": expected}


async def test_now_reports_the_requested_zone_and_rejects_unknown_ones(toolbox: Client) -> None:
    tokyo = await toolbox.call_tool("now", {"timezone": "Asia/Tokyo"})
    utc = await toolbox.call_tool("now", {})
    unknown = await toolbox.call_tool("now", {"timezone": "../../etc/passwd"})
    assert tokyo.structured_content is not None and tokyo.structured_content["iso"].endswith("+09:00")
    assert utc.structured_content is not None and utc.structured_content["timezone"] == "UTC"
    assert unknown.is_error


async def test_units_resource_and_explain_prompt(toolbox: Client) -> None:
    units = json.loads(resource_text((await toolbox.read_resource("toolbox://units")).contents))
    prompt = await toolbox.get_prompt("explain_calculation", {"expression": "1 + 2 * 3"})
    assert set(units) == {"length", "mass", "temperature"}
    assert {"symbol": "km", "name": "kilometre"} in units["length"]
    content = prompt.messages[0].content
    assert isinstance(content, TextContent) and "1 + 2 * 3" in content.text and "7" in content.text


async def test_toolbox_keeps_dns_rebinding_protection_on_loopback(toolbox_url: str) -> None:
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    headers = {"Accept": "application/json, text/event-stream"}
    async with httpx2.AsyncClient() as http:
        foreign = await http.post(toolbox_url, json=initialize, headers={**headers, "Host": "evil.example.com"})
        local = await http.post(toolbox_url, json=initialize, headers=headers)
    assert foreign.status_code == 421 and local.status_code == 200


# echo (stdio and streamable HTTP)


async def test_echo_and_slow_echo_answer_over_stdio() -> None:
    params = StdioServerParameters(command=sys.executable, args=[str(UPSTREAMS / "echo_server.py")])
    async with Client(params) as client:
        echoed = await client.call_tool("echo", {"text": "hi"})
        slow = await client.call_tool("slow_echo", {"text": "later", "delay_ms": 1})
    assert (text_of(echoed), text_of(slow)) == ("hi", "later")


async def test_echo_and_slow_echo_answer_over_http() -> None:
    with running_example("echo_server.py", "--transport", "http") as (url, _):
        async with Client(url) as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            echoed = await client.call_tool("echo", {"text": "hi"})
            slow = await client.call_tool("slow_echo", {"text": "later", "delay_ms": 1})
    assert names == {"echo", "slow_echo", "crash", "add_alias"}
    assert (echoed.structured_content, slow.structured_content) == ({"result": "hi"}, {"result": "later"})


async def test_crash_over_stdio_closes_the_connection_mid_call() -> None:
    params = StdioServerParameters(command=sys.executable, args=[str(UPSTREAMS / "echo_server.py")])
    async with Client(params) as client:
        with pytest.raises(MCPError) as info:
            await client.call_tool("crash", {})
    assert info.value.code == CONNECTION_CLOSED


async def test_crash_over_http_kills_the_process_mid_call() -> None:
    with running_example("echo_server.py", "--transport", "http") as (url, process):
        # The SDK's HTTP client surfaces a dropped POST from its transport task group, not from call_tool.
        with pytest.raises(ExceptionGroup) as info:
            async with Client(url) as client:
                await client.call_tool("crash", {})
        assert await anyio.to_thread.run_sync(lambda: process.wait(timeout=10)) == 3
    assert info.group_contains(httpx2.TransportError)


# conformance fixtures, through the Python client in both protocol eras


async def answer_sampling(context: ClientRequestContext, params: CreateMessageRequestParams) -> CreateMessageResult:
    return CreateMessageResult(role="assistant", content=TextContent(type="text", text="sampled"), model="fake")


async def answer_elicitation(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
    return ElicitResult(action="accept", content={"username": "ada", "email": "ada@example.com"})


@pytest.fixture(scope="module")
def conformance_url() -> Iterator[str]:
    with running_example("conformance_server.py") as (url, _):
        yield url


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_conformance_server_samples_and_elicits_in_either_protocol_era(conformance_url: str, mode: str) -> None:
    client = Client(
        conformance_url, mode=mode, sampling_callback=answer_sampling, elicitation_callback=answer_elicitation
    )
    async with client:
        sampled = await client.call_tool("test_sampling", {"prompt": "hi"})
        elicited = await client.call_tool("test_elicitation", {"message": "who are you?"})
        era = client.protocol_version
    assert era == ("2026-07-28" if mode == "auto" else "2025-11-25")
    assert text_of(sampled) == "LLM response: sampled"
    assert "ada@example.com" in text_of(elicited) and "action=accept" in text_of(elicited)


async def test_conformance_server_serves_the_suite_fixtures(conformance_url: str) -> None:
    async with Client(conformance_url) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        text = await client.call_tool("test_simple_text", {})
        error = await client.call_tool("test_error_handling", {})
        mixed = await client.call_tool("test_multiple_content_types", {})
        template = await client.read_resource("test://template/123/data")
        prompt = await client.get_prompt("test_prompt_with_arguments", {"arg1": "a", "arg2": "b"})
    assert {"test_simple_text", "test_image_content", "test_reconnection", "json_schema_2020_12_tool"} <= set(tools)
    assert tools["json_schema_2020_12_tool"].input_schema["additionalProperties"] is False
    assert text_of(text) == "This is a simple text response for testing." and error.is_error
    assert [block.type for block in mixed.content] == ["text", "image", "resource"]
    expected_data = {"id": "123", "templateTest": True, "data": "Data for ID: 123"}
    assert json.loads(resource_text(template.contents)) == expected_data
    assert isinstance(prompt.messages[0].content, TextContent)
    assert prompt.messages[0].content.text == "Prompt with arguments: arg1='a', arg2='b'"


async def test_reconnection_tool_answers_through_a_resumed_stream_in_the_handshake_era(conformance_url: str) -> None:
    async with Client(conformance_url, mode="legacy") as client:
        with anyio.fail_after(30):
            result = await client.call_tool("test_reconnection", {})
    assert text_of(result) == "Reconnection test completed successfully"
