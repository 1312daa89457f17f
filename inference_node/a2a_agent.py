"""A model as an A2A agent: the broker registers it like any agent (card, skill `generate`) and relays to it.

Every message becomes a Task: WORKING, then the generated text as one artifact streamed in chunks
(`append`), then COMPLETED with the final text; the completing message's metadata carries the token counts
under `io.meshgate/usage`, which the broker meters against the caller. The broker's `max_tokens`
obligation arrives as message metadata `io.meshgate/max_tokens` and lowers the request's budget.

Run: `python -m inference_node.a2a_agent --model smollm2 --registry sqlite:///PATH --port 8961`
(`meshgate up` does); the first stdout line is `<model> listening on <base URL>`.
"""

from __future__ import annotations

import argparse
import socket
import sys
import uuid
from typing import Any

import anyio
import uvicorn
from a2a.helpers import new_task_from_user_message, new_text_part
from a2a.server.agent_execution import AgentExecutor, RequestContext
from a2a.server.events import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes import create_agent_card_routes, create_jsonrpc_routes, create_rest_routes
from a2a.server.tasks import InMemoryTaskStore, TaskUpdater
from a2a.types import AgentCapabilities, AgentCard, AgentInterface, AgentProvider, AgentSkill
from starlette.applications import Starlette

from inference_node.engine import ChatMessage, GenerationRequest
from inference_node.front import add_front_arguments, front_router
from inference_node.routing import ModelRouter
from meshgate.errors import MeshError
from registry.usage import USAGE_META_KEY

SERVICE_NAME = "meshgate-model-agent"
MAX_TOKENS_META_KEY = "io.meshgate/max_tokens"
SYSTEM_META_KEY = "io.meshgate/system"
DEFAULT_MAX_TOKENS = 128
JSONRPC_PATH = "/a2a/jsonrpc"
REST_PATH = "/a2a/rest"


class ModelExecutor(AgentExecutor):
    """Generates with the router for each message; cancelling the task stops the generation on the node."""

    def __init__(self, model: str, router: ModelRouter) -> None:
        self.model = model
        self._router = router

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.message is not None  # the SDK builds the context from a message
        task = context.current_task
        if task is None:
            task = new_task_from_user_message(context.message)
            await event_queue.enqueue_event(task)  # the Task MUST be the first event
        updater = TaskUpdater(event_queue, task.id, task.context_id)
        metadata = {**dict(context.metadata), **dict(context.message.metadata)}
        prompt = context.get_user_input()
        if not prompt.strip():
            await updater.reject(updater.new_agent_message([new_text_part("send a text part to generate from")]))
            return
        system = metadata.get(SYSTEM_META_KEY)
        messages = (ChatMessage("system", system),) if isinstance(system, str) and system else ()
        request = GenerationRequest(
            request_id=task.id,
            messages=(*messages, ChatMessage("user", prompt)),
            max_tokens=_max_tokens(metadata),
        )
        await updater.start_work()
        artifact_id = uuid.uuid4().hex
        text: list[str] = []
        usage: dict[str, Any] = {
            "model": self.model,
            "node": "",
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "max_tokens": request.max_tokens,  # the budget it ran under, after the broker's obligation
        }
        try:
            async for routed in self._router.generate(request, self.model):
                chunk = routed.chunk
                usage.update(
                    node=routed.node, prompt_tokens=chunk.prompt_tokens, completion_tokens=chunk.completion_tokens
                )
                if chunk.text:
                    await updater.add_artifact(
                        [new_text_part(chunk.text)],
                        artifact_id=artifact_id,
                        name="generation",
                        append=bool(text),
                        last_chunk=False,
                    )
                    text.append(chunk.text)
        except MeshError as exc:
            await updater.failed(
                updater.new_agent_message([new_text_part(f"{exc.code}: {exc.detail}")], {USAGE_META_KEY: usage})
            )
            return
        await updater.add_artifact([], artifact_id=artifact_id, name="generation", append=True, last_chunk=True)
        final = updater.new_agent_message([new_text_part("".join(text))], {USAGE_META_KEY: usage})
        await updater.complete(final)

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        assert context.task_id is not None and context.context_id is not None
        await TaskUpdater(event_queue, context.task_id, context.context_id).cancel()


def _max_tokens(metadata: dict[str, Any]) -> int:
    """The caller's `max_tokens`, lowered to the broker's obligation when it set one."""
    wanted = metadata.get("max_tokens", DEFAULT_MAX_TOKENS)
    budget = int(wanted) if isinstance(wanted, int | float) and wanted >= 1 else DEFAULT_MAX_TOKENS
    cap = metadata.get(MAX_TOKENS_META_KEY)
    if isinstance(cap, int | float) and cap >= 1:
        budget = min(budget, int(cap))
    return budget


def build_card(model: str, organization: str, base_url: str) -> AgentCard:
    return AgentCard(
        name=model,
        description=f"The {model} model on meshgate's inference nodes: send text, get generated text.",
        version="1.0.0",
        provider=AgentProvider(organization=organization, url="https://meshgate.invalid"),
        supported_interfaces=[
            AgentInterface(protocol_binding="JSONRPC", protocol_version="1.0", url=base_url + JSONRPC_PATH),
            AgentInterface(protocol_binding="HTTP+JSON", protocol_version="1.0", url=base_url + REST_PATH),
        ],
        capabilities=AgentCapabilities(streaming=True),
        default_input_modes=["text/plain"],
        default_output_modes=["text/plain"],
        skills=[
            AgentSkill(
                id="generate",
                name="Generate text",
                description=f"Continues a conversation with the {model} model. Metadata `max_tokens` sets the "
                "budget (the broker's policy may lower it), `io.meshgate/system` a system prompt.",
                tags=["inference", "text-generation", f"model:{model}"],
                examples=["Write a haiku about routers."],
            )
        ],
    )


async def serve(model: str, organization: str, router: ModelRouter, host: str, port: int) -> None:
    """Bind, announce the base URL on stdout's first line, serve until cancelled."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # IPPROTO_TCP: TCP_NODELAY applies
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    bound_host, bound_port = sock.getsockname()[:2]
    base_url = f"http://{f'[{bound_host}]' if ':' in bound_host else bound_host}:{bound_port}"
    card = build_card(model, organization, base_url)
    handler = DefaultRequestHandler(
        agent_executor=ModelExecutor(model, router), task_store=InMemoryTaskStore(), agent_card=card
    )
    app = Starlette(
        routes=[
            *create_agent_card_routes(card),
            *create_jsonrpc_routes(handler, rpc_url=JSONRPC_PATH),
            *create_rest_routes(handler, path_prefix=REST_PATH),
        ]
    )
    print(f"{model} listening on {base_url}", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    try:
        await server.serve(sockets=[sock])
    finally:
        await handler.aclose()
        await router.aclose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve one model as an A2A agent (skill `generate`).")
    add_front_arguments(parser)
    parser.add_argument("--organization", default="meshgate", help="the card's provider organisation")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    with front_router(args, SERVICE_NAME) as router:
        try:
            anyio.run(serve, args.model, args.organization, router, args.host, args.port)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    sys.exit(main())
