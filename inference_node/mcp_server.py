"""A model as an MCP tool: the stdio server the gateway federates as upstream `<model>`, tool `generate`.

So the catalog shows `<model>_generate`, decided, audited and traced like any tool. Each call goes
through the router to a node; streamed tokens become progress notifications (the gateway relays them),
and the result carries the token counts in `structuredContent.usage` and in `_meta` under
`io.meshgate/usage`, which the gateway meters against the caller (it never forwards who the caller is).
Errors are tool errors (`isError`) whose text starts with the stable code, e.g. `node_unavailable: ...`.

Run: `python -m inference_node.mcp_server --model smollm2 --registry sqlite:///PATH` (the gateway does).
"""

from __future__ import annotations

import argparse
import sys
import uuid
from typing import Annotated

from mcp.server.mcpserver import Context, MCPServer
from mcp_types import CallToolResult, TextContent
from pydantic import Field
from typing_extensions import TypedDict  # pydantic needs it for nested TypedDicts before Python 3.12

from inference_node.engine import ChatMessage, GenerationRequest
from inference_node.front import add_front_arguments, front_router
from inference_node.routing import ModelRouter
from meshgate.errors import MeshError
from registry.usage import USAGE_META_KEY

SERVICE_NAME = "meshgate-model-tool"
MAX_TOKENS_LIMIT = 2048


class Usage(TypedDict):
    prompt_tokens: int
    completion_tokens: int
    cached_prompt_tokens: int


class Generation(TypedDict):
    """The generated text, who generated it, and what it cost."""

    text: str
    model: str
    node: str
    finish_reason: str
    usage: Usage


Prompt = Annotated[str, Field(min_length=1, max_length=32_000, description="The user's message to the model.")]
System = Annotated[str, Field(max_length=32_000, description="An optional system prompt.")]
MaxTokens = Annotated[int, Field(ge=1, le=MAX_TOKENS_LIMIT, description="Most tokens to generate.")]
Temperature = Annotated[float, Field(ge=0.0, le=2.0, description="0 is greedy: the same prompt, the same text.")]


def build_server(model: str, router: ModelRouter) -> MCPServer:
    """The MCP server exposing `model` as the tool `generate`."""
    server = MCPServer(
        model, version="1.0.0", instructions=f"Text generation with the {model} model.", log_level="WARNING"
    )

    @server.tool(
        name="generate",
        description=f"Generate text with the {model} model, routed to one of its inference nodes. Tokens stream "
        "as progress notifications when the caller asks for progress.",
    )
    async def generate(
        prompt: Prompt,
        ctx: Context,
        system: System = "",
        max_tokens: MaxTokens = 128,
        temperature: Temperature = 0.0,
    ) -> Annotated[CallToolResult, Generation]:
        messages = (ChatMessage("system", system),) if system else ()
        request = GenerationRequest(
            request_id=uuid.uuid4().hex,
            messages=(*messages, ChatMessage("user", prompt)),
            max_tokens=max_tokens,
            temperature=temperature,
        )
        text: list[str] = []
        node, finish, usage = "", "", Usage(prompt_tokens=0, completion_tokens=0, cached_prompt_tokens=0)
        try:
            async for routed in router.generate(request, model):
                chunk = routed.chunk
                node = routed.node
                usage = Usage(
                    prompt_tokens=chunk.prompt_tokens,
                    completion_tokens=chunk.completion_tokens,
                    cached_prompt_tokens=chunk.cached_prompt_tokens,
                )
                finish = chunk.finish_reason or finish
                if chunk.text:
                    text.append(chunk.text)
                    await ctx.report_progress(chunk.completion_tokens, max_tokens, chunk.text)
        except MeshError as exc:
            return CallToolResult(content=[TextContent(type="text", text=f"{exc.code}: {exc.detail}")], is_error=True)
        result = Generation(text="".join(text), model=model, node=node, finish_reason=finish, usage=usage)
        return CallToolResult.model_validate(
            {
                "content": [{"type": "text", "text": result["text"]}],
                "structuredContent": dict(result),
                "_meta": {USAGE_META_KEY: {"model": model, "node": node, **usage}},
            }
        )

    return server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve one model as the MCP tool `generate` on stdio.")
    add_front_arguments(parser)
    args = parser.parse_args(argv)
    with front_router(args, SERVICE_NAME) as router:
        build_server(args.model, router).run()


if __name__ == "__main__":
    sys.exit(main())
