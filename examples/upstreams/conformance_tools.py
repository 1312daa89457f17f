"""The tools the server scenarios of `@modelcontextprotocol/conformance` 0.1.16 call.

Names, arguments and replies follow the suite's scenario descriptions (`test_simple_text`,
`test_sampling`, `json_schema_2020_12_tool`, ...). Sampling and elicitation go through
`Resolve(...)`, so they work on both handshake-era and 2026-07-28 connections.
"""

from __future__ import annotations

import base64
import json
from typing import Annotated, Any, Literal

import anyio
from mcp.server.mcpserver import Context, Elicit, ElicitationResult, MCPServer, Resolve, Sample
from mcp.server.mcpserver.tools import Tool
from mcp_types import (
    AudioContent,
    CallToolResult,
    CreateMessageResult,
    EmbeddedResource,
    ImageContent,
    SamplingMessage,
    TextContent,
    TextResourceContents,
)
from pydantic import BaseModel, Field, JsonValue

from examples.upstreams.sample_media import red_pixel_png, silent_wav

PNG_BASE64 = base64.b64encode(red_pixel_png()).decode()
WAV_BASE64 = base64.b64encode(silent_wav()).decode()
STEP_DELAY_S = 0.05  # the suite asks for ~50 ms between log and progress notifications

JSON_SCHEMA_2020_12 = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {"address": {"type": "object", "properties": {"street": {"type": "string"}, "city": {"type": "string"}}}},
    "properties": {"name": {"type": "string"}, "address": {"$ref": "#/$defs/address"}},
    "additionalProperties": False,
}


class Contact(BaseModel):
    """What `test_elicitation` asks the user for."""

    username: str = Field(description="User's response")
    email: str = Field(description="User's email address")


class Profile(BaseModel):
    """SEP-1034: a default for every primitive type."""

    name: str = Field("John Doe", description="User name")
    age: int = Field(30, description="User age")
    score: float = Field(95.5, description="User score")
    status: Literal["active", "inactive", "pending"] = Field("active", description="User status")
    verified: bool = Field(True, description="Verification status")


def _choices(*pairs: tuple[str, str]) -> list[JsonValue]:
    return [{"const": value, "title": title} for value, title in pairs]


class EnumChoices(BaseModel):
    """SEP-1330: the five enum shapes, under the camelCase field names the suite checks.

    pydantic renders no titled enums, so the titled and legacy shapes are spelled out in the schema.
    """

    untitledSingle: Literal["option1", "option2", "option3"]
    titledSingle: str = Field(
        json_schema_extra={"oneOf": _choices(("value1", "First Option"), ("value2", "Second Option"))}
    )
    legacyEnum: Literal["opt1", "opt2", "opt3"] = Field(
        json_schema_extra={"enumNames": ["Option One", "Option Two", "Option Three"]}
    )
    untitledMulti: list[Literal["option1", "option2", "option3"]]
    titledMulti: list[str] = Field(
        json_schema_extra={"items": {"anyOf": _choices(("value1", "First Choice"), ("value2", "Second Choice"))}}
    )


def ask_contact(message: str) -> Elicit[Contact]:
    """Resolver: ask the user for a contact, with the tool's `message` argument."""
    return Elicit(message, Contact)


def ask_profile() -> Elicit[Profile]:
    """Resolver: ask the user to confirm a profile whose fields all have defaults."""
    return Elicit("Please review your profile; every field has a default.", Profile)


def ask_choices() -> Elicit[EnumChoices]:
    """Resolver: ask the user to pick from each enum shape."""
    return Elicit("Please pick from each kind of list.", EnumChoices)


def sample_reply(prompt: str) -> Sample:
    """Resolver: sample the client's LLM with the tool's `prompt` argument."""
    message = SamplingMessage(role="user", content=TextContent(type="text", text=prompt))
    return Sample([message], max_tokens=100)


def _outcome(prefix: str, outcome: ElicitationResult[Any]) -> str:
    content = outcome.data.model_dump(mode="json") if outcome.action == "accept" else None
    return f"{prefix}: action={outcome.action}, content={json.dumps(content)}"


def text_resource(uri: str, text: str, mime_type: str = "text/plain") -> EmbeddedResource:
    return EmbeddedResource(type="resource", resource=TextResourceContents(uri=uri, mime_type=mime_type, text=text))


def red_pixel() -> ImageContent:
    """The suite's test image as an image content block."""
    return ImageContent(type="image", data=PNG_BASE64, mime_type="image/png")


def add_tools(server: MCPServer) -> None:
    """Register the tools the `tools-*`, `elicitation-*` and `server-sse-*` scenarios call."""

    @server.tool()
    def test_simple_text() -> str:
        """Returns a fixed text block."""
        return "This is a simple text response for testing."

    @server.tool()
    def test_image_content() -> ImageContent:
        """Returns a 1x1 red PNG image."""
        return red_pixel()

    @server.tool()
    def test_audio_content() -> AudioContent:
        """Returns a short silent WAV clip."""
        return AudioContent(type="audio", data=WAV_BASE64, mime_type="audio/wav")

    @server.tool()
    def test_embedded_resource() -> EmbeddedResource:
        """Returns an embedded text resource."""
        return text_resource("test://embedded-resource", "This is an embedded resource content.")

    @server.tool()
    def test_multiple_content_types() -> list[TextContent | ImageContent | EmbeddedResource]:
        """Returns text, an image and an embedded JSON resource together."""
        resource = text_resource("test://mixed-content-resource", '{"test":"data","value":123}', "application/json")
        return [TextContent(type="text", text="Multiple content types test:"), red_pixel(), resource]

    @server.tool()
    async def test_tool_with_logging(ctx: Context) -> str:
        """Sends three info log notifications while it runs."""
        for step in ("Tool execution started", "Tool processing data", "Tool execution completed"):
            await ctx.info(step)  # pyright: ignore[reportDeprecated]
            await anyio.sleep(STEP_DELAY_S)
        return "Tool with logging executed successfully"

    @server.tool()
    async def test_tool_with_progress(ctx: Context) -> str:
        """Reports progress 0, 50 and 100 out of 100 when the caller asked for progress."""
        for progress in (0, 50, 100):
            await ctx.report_progress(progress, 100)
            if progress < 100:
                await anyio.sleep(STEP_DELAY_S)
        return "Tool with progress executed successfully"

    @server.tool()
    def test_error_handling() -> CallToolResult:
        """Always fails, reporting the failure as a tool error."""
        text = "This tool intentionally returns an error for testing"
        return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)

    @server.tool()
    def test_sampling(prompt: str, reply: Annotated[CreateMessageResult, Resolve(sample_reply)]) -> str:
        """Asks the client's LLM to answer the prompt (sampling) and returns its answer."""
        content = reply.content
        return f"LLM response: {content.text if isinstance(content, TextContent) else content.type}"

    @server.tool()
    def test_elicitation(message: str, outcome: Annotated[ElicitationResult[Contact], Resolve(ask_contact)]) -> str:
        """Asks the user for a username and email (elicitation) and returns the answer."""
        return _outcome("User response", outcome)

    @server.tool()
    def test_elicitation_sep1034_defaults(outcome: Annotated[ElicitationResult[Profile], Resolve(ask_profile)]) -> str:
        """Elicits a form whose every field carries a default (SEP-1034)."""
        return _outcome("Elicitation completed", outcome)

    @server.tool()
    def test_elicitation_sep1330_enums(
        outcome: Annotated[ElicitationResult[EnumChoices], Resolve(ask_choices)],
    ) -> str:
        """Elicits a form with all five enum shapes (SEP-1330)."""
        return _outcome("Elicitation completed", outcome)

    @server.tool()
    async def test_reconnection(ctx: Context) -> str:
        """Closes its SSE stream mid-call so the client must resume with Last-Event-ID (SEP-1699)."""
        await ctx.close_sse_stream()
        # Answer after the close, so the result reaches the client only through the resumed stream.
        await anyio.sleep(STEP_DELAY_S)
        return "Reconnection test completed successfully"


def _json_schema_2020_12_tool(name: str | None = None, address: dict[str, str] | None = None) -> str:
    """Tool with JSON Schema 2020-12 features."""
    return f"name={name!r}, address={address!r}"


def json_schema_tool() -> Tool:
    """`json_schema_2020_12_tool`, publishing the suite's own 2020-12 input schema verbatim.

    The suite checks that `$schema`, `$defs` and `additionalProperties` survive listing, which a
    schema derived from the signature would not have.
    """
    tool = Tool.from_function(_json_schema_2020_12_tool, name="json_schema_2020_12_tool")
    return tool.model_copy(update={"parameters": JSON_SCHEMA_2020_12})
