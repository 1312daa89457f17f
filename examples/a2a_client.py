"""A copy-paste A2A client for a running broker, built on the official `a2a-sdk` client.

    python examples/a2a_client.py card
    python examples/a2a_client.py --key mgk_... send ledger "100 EUR to USD" --skill currency-quote
    python examples/a2a_client.py --key mgk_... send planner "3 nights at 120 EUR in USD" --stream
    python examples/a2a_client.py --key mgk_... get TASK_ID

`send AGENT_ID` addresses a registered agent through the broker (the request's A2A `tenant` field) and
names the skill in the message's `metadata["io.meshgate/skill"]`. Prints each result as JSON (one line
per event with `--stream`); an A2A error prints `error <code>: <message>` and its data, and exits 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import anyio
import httpx
from a2a.client import A2ACardResolver, ClientConfig, ClientFactory
from a2a.helpers import new_text_message
from a2a.types import GetTaskRequest, Role, SendMessageRequest
from a2a.utils.errors import JSON_RPC_ERROR_CODE_MAP, A2AError
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message as ProtoMessage

SKILL_KEY = "io.meshgate/skill"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Talk to a meshgate A2A broker with the a2a-sdk client.")
    parser.add_argument("--url", default="http://127.0.0.1:8901", help="broker base URL (default: %(default)s)")
    parser.add_argument("--key", default="", help="API key or JWT, sent as a bearer token (default: anonymous)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("card", help="print the broker's agent card")
    send = commands.add_parser("send", help="send a text message to a registered agent through the broker")
    send.add_argument("agent_id")
    send.add_argument("text")
    send.add_argument("--skill", default="", help="the target's skill (default: its only skill)")
    send.add_argument("--stream", action="store_true", help="stream the answer (SendStreamingMessage)")
    get = commands.add_parser("get", help="get a task this principal created")
    get.add_argument("task_id")
    return parser


class JsonRpcErrors:
    """Keeps the last JSON-RPC error body seen: the SDK client keeps only the code and message of a code it
    does not know (meshgate's -32030… are custom codes), so this response hook keeps its `data` too."""

    def __init__(self) -> None:
        self.last: dict[str, Any] | None = None

    async def __call__(self, response: httpx.Response) -> None:
        if response.headers.get("content-type", "").startswith("application/json"):
            await response.aread()
            try:
                body = response.json()
            except ValueError:
                return
            if isinstance(body, dict) and isinstance(body.get("error"), dict):  # pyright: ignore[reportUnknownMemberType]
                self.last = body["error"]


def _json(message: ProtoMessage) -> dict[str, Any]:
    return MessageToDict(message)


async def _run(args: argparse.Namespace, errors: JsonRpcErrors) -> Any:
    headers = {"Authorization": f"Bearer {args.key}"} if args.key else {}
    async with httpx.AsyncClient(timeout=60, headers=headers, event_hooks={"response": [errors]}) as http:
        card = await A2ACardResolver(http, args.url).get_agent_card()
        if args.command == "card":
            return _json(card)
        streaming = args.command == "send" and args.stream
        client = ClientFactory(ClientConfig(streaming=streaming, httpx_client=http)).create(card)
        try:
            if args.command == "get":
                return _json(await client.get_task(GetTaskRequest(id=args.task_id)))
            message = new_text_message(args.text, role=Role.ROLE_USER)
            if args.skill:
                message.metadata.update({SKILL_KEY: args.skill})
            request = SendMessageRequest(tenant=args.agent_id, message=message)
            answers: list[dict[str, Any]] = []
            async for event in client.send_message(request):  # one event, or each event of a stream
                if streaming:
                    print(json.dumps(_json(event)), flush=True)
                else:
                    answers.append(_json(event))
            return answers[0] if answers else None
        finally:
            await client.close()


def _error(exc: A2AError, errors: JsonRpcErrors) -> dict[str, Any]:
    if errors.last is not None:
        return errors.last
    code = JSON_RPC_ERROR_CODE_MAP.get(type(exc))
    data: object = getattr(exc, "data", None)  # the SDK types it as a bare `dict`
    return {"code": code, "message": exc.message, "data": data}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    errors = JsonRpcErrors()
    try:
        result = anyio.run(_run, args, errors)
    except A2AError as exc:  # A2AClientError too
        error = _error(exc, errors)
        print(f"error {error.get('code')}: {error.get('message')}", file=sys.stderr)
        print(json.dumps(error.get("data"), indent=2), file=sys.stderr)
        return 1
    except httpx.HTTPError as exc:
        print(f"error: cannot reach the broker at {args.url}: {type(exc).__name__}", file=sys.stderr)
        return 1
    if result is not None:
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
