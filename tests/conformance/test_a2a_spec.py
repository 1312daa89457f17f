"""The broker and the example agents against required-level behaviours of the A2A 1.0 specification.

Each test cites its clause (`docs/specification.md` of A2A v1.0: §3 operations, §4.4 the Agent Card,
§5.3 method mapping, §5.4 error code mappings, §3.6 versioning, §9 JSON-RPC, §11 HTTP+JSON). Wire
details the SDK client would hide (method names, HTTP statuses, SSE framing, error objects) are checked
with raw httpx requests; the SDK client drives what it does not hide. Everything runs on 127.0.0.1: the
example agents of `examples/agents/` as real child processes, the broker in this process, registered
through the same path as `meshgate agents add`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncGenerator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from a2a_broker.app import build_broker
from a2a_broker.cards import card_url, fetch_card, register_card
from meshgate.config import BrokerConfig
from meshgate.identity import Authenticator, new_api_key
from policies import DEFAULT_BUNDLE, RegorusEngine
from registry.audit import AuditLog
from registry.sqlite_store import SqliteStore
from tests.e2e.test_broker import serving

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

AGENTS = Path(__file__).resolve().parents[2] / "examples" / "agents"
V1 = {"A2A-Version": "1.0"}
TERMINAL = {"TASK_STATE_COMPLETED", "TASK_STATE_FAILED", "TASK_STATE_CANCELED", "TASK_STATE_REJECTED"}
METHODS = [  # §5.3 Method Mapping Reference: the JSON-RPC method names
    "SendMessage",
    "SendStreamingMessage",
    "GetTask",
    "ListTasks",
    "CancelTask",
    "SubscribeToTask",
    "CreateTaskPushNotificationConfig",
    "GetTaskPushNotificationConfig",
    "ListTaskPushNotificationConfigs",
    "DeleteTaskPushNotificationConfig",
    "GetExtendedAgentCard",
]


def requirement(clause: str) -> pytest.MarkDecorator:
    """The specification clause a test checks (shown in the test's markers)."""
    return pytest.mark.parametrize("_clause", [clause], ids=[clause])


# The example agents, as real children, once per module


@pytest.fixture(scope="module")
def agents() -> Iterator[dict[str, str]]:
    started: dict[str, subprocess.Popen[str]] = {}
    urls: dict[str, str] = {}
    try:
        for name, script in (("ledger", "finance_agent.py"), ("planner", "travel_agent.py")):
            process = subprocess.Popen(
                [sys.executable, str(AGENTS / script), "--host", "127.0.0.1", "--port", "0", "--no-grpc"],
                stdout=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
            started[name] = process
            assert process.stdout is not None
            line = process.stdout.readline()  # the agent prints this once its socket listens
            assert " listening on " in line, line
            urls[name] = line.split()[-1]
        yield urls
    finally:
        for process in started.values():
            process.terminate()
            process.wait(timeout=10)


@dataclass
class Mesh:
    url: str
    store: SqliteStore
    agents: dict[str, str]
    keys: dict[str, str] = field(default_factory=dict[str, str])

    def key(self, tenant: str, subject: str) -> str:
        if subject not in self.keys:
            record, token = new_api_key(tenant, subject, ())
            self.store.add_api_key(record)
            self.keys[subject] = token
        return self.keys[subject]

    def headers(self, tenant: str = "finance", subject: str = "fin-bot", **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key(tenant, subject)}", **V1, **extra}

    async def rpc(
        self, method: str, params: dict[str, Any], *, headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
        async with httpx.AsyncClient(timeout=15) as http:
            response = await http.post(f"{self.url}/a2a/jsonrpc", json=body, headers=headers or self.headers())
        assert response.headers["content-type"].startswith("application/json")
        answer = response.json()
        assert answer["jsonrpc"] == "2.0" and answer["id"] == 1
        return answer

    async def rest(
        self, method: str, path: str, body: dict[str, Any] | None = None, *, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        async with httpx.AsyncClient(timeout=15) as http:
            return await http.request(
                method, f"{self.url}/a2a/rest{path}", json=body, headers=headers or self.headers()
            )


@pytest.fixture
async def mesh(tmp_path: Path, agents: dict[str, str]) -> AsyncGenerator[Mesh]:
    store = SqliteStore(tmp_path / "registry.db")
    audit = AuditLog(store)
    config = BrokerConfig(enabled=True, port=0, relay_timeout_s=10)
    broker = build_broker(
        config, store, RegorusEngine(DEFAULT_BUNDLE), Authenticator([], store, False), audit, allow_anonymous=False
    )
    for agent_id, base in agents.items():
        url = card_url(base)
        register_card(store, agent_id, fetch_card(url), card_url=url, registered_at="2026-01-01T00:00:00Z")
    try:
        async with serving(broker.asgi()) as front:
            broker.base_url = f"http://127.0.0.1:{front.port}"
            yield Mesh(broker.base_url, store, agents)
    finally:
        audit.close()
        store.close()


def message(text: str, *, agent: str = "ledger", skill: str = "", **extra: Any) -> dict[str, Any]:
    metadata = {"io.meshgate/skill": skill} if skill else {}
    return {
        "tenant": agent,
        "message": {"messageId": f"m-{text[:8]}", "role": "ROLE_USER", "parts": [{"text": text}], "metadata": metadata},
        **extra,
    }


TRANSFER = "transfer 5 EUR from acc-1 to acc-2"


async def completed_task(mesh: Mesh, **headers: str) -> dict[str, Any]:
    answer = await mesh.rpc("SendMessage", message(TRANSFER, skill="transfer-funds"), headers=headers or None)
    task = answer["result"]["task"]
    assert task["status"]["state"] == "TASK_STATE_COMPLETED"
    return task


# §4.4 / §8: the Agent Card


def required_card_fields(card: dict[str, Any]) -> None:
    # requirement: §4.4.1 AgentCard — name, description, version, supportedInterfaces, capabilities,
    # defaultInputModes, defaultOutputModes, skills are REQUIRED; §4.4.6 AgentInterface url/protocolBinding/
    # protocolVersion REQUIRED; §4.4.5 AgentSkill id/name/description/tags REQUIRED.
    for name in ("name", "description", "version"):
        assert isinstance(card.get(name), str) and card[name], name
    assert card["supportedInterfaces"], "supportedInterfaces"
    for interface in card["supportedInterfaces"]:
        assert interface["url"].startswith("http")
        assert interface["protocolBinding"] in {"JSONRPC", "HTTP+JSON", "GRPC"}
        assert interface["protocolVersion"] == "1.0"
    assert isinstance(card["capabilities"], dict)
    assert card["defaultInputModes"] and card["defaultOutputModes"]
    assert card["skills"]
    for skill in card["skills"]:
        assert skill["id"] and skill["name"] and skill["description"] and skill["tags"], skill


@requirement("8.2 well-known URI; 4.4.1 AgentCard required fields")
async def test_the_broker_and_example_agent_cards_carry_every_required_field(mesh: Mesh, _clause: str) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        for base in (mesh.url, *mesh.agents.values()):
            response = await http.get(f"{base}/.well-known/agent-card.json")
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("application/json")
            required_card_fields(response.json())


@requirement("8.3 protocol declaration: each declared interface answers its binding")
async def test_every_declared_interface_of_the_broker_answers(mesh: Mesh, _clause: str) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        card = (await http.get(f"{mesh.url}/.well-known/agent-card.json")).json()
    urls = {i["protocolBinding"]: i["url"] for i in card["supportedInterfaces"]}
    assert urls == {"JSONRPC": f"{mesh.url}/a2a/jsonrpc", "HTTP+JSON": f"{mesh.url}/a2a/rest"}
    missing = await mesh.rpc("GetTask", {"id": "nope"})
    assert missing["error"]["code"] == -32001
    assert (await mesh.rest("GET", "/tasks/nope")).status_code == 404


# §9 JSON-RPC binding


@pytest.mark.parametrize("method", METHODS)
@requirement("9.1 / 5.3 JSON-RPC method names are the PascalCase operation names")
async def test_every_operation_is_served_under_its_jsonrpc_method_name(mesh: Mesh, method: str, _clause: str) -> None:
    answer = await mesh.rpc(method, {"id": "nope", "taskId": "nope"})
    # served: whatever it answers, it is not "method not found"
    assert answer.get("error", {}).get("code") != -32601, answer


@requirement("9.5 JSON-RPC 2.0 error codes: -32700 parse error, -32600 invalid request, -32601, -32602")
async def test_malformed_json_rpc_gets_the_json_rpc_error_codes(mesh: Mesh, _clause: str) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        post = f"{mesh.url}/a2a/jsonrpc"
        parse = await http.post(post, content=b"{not json", headers=mesh.headers())
        invalid = await http.post(post, json={"id": 1, "method": "GetTask"}, headers=mesh.headers())
        unknown = await http.post(
            post, json={"jsonrpc": "2.0", "id": 1, "method": "tasks/nope"}, headers=mesh.headers()
        )
    assert parse.json()["error"]["code"] == -32700
    assert invalid.json()["error"]["code"] == -32600
    assert unknown.json()["error"]["code"] == -32601
    too_many = await mesh.rpc("ListTasks", {"pageSize": 1000})
    assert too_many["error"]["code"] == -32602


@requirement("3.1.1 SendMessage returns a Task or a Message; 5.5 ProtoJSON enum names")
async def test_send_message_returns_a_task_or_a_message_with_proto_json_enums(mesh: Mesh, _clause: str) -> None:
    quote = await mesh.rpc("SendMessage", message("100 EUR to USD", skill="currency-quote"))
    assert set(quote["result"]) == {"message"}
    assert quote["result"]["message"]["role"] == "ROLE_AGENT"
    task = await completed_task(mesh)
    assert task["id"] and task["contextId"]
    assert task["status"]["timestamp"].endswith("Z")  # §5.6.1: ISO 8601, UTC
    got = await mesh.rpc("GetTask", {"id": task["id"]})
    assert got["result"]["id"] == task["id"] and got["result"]["status"]["state"] in TERMINAL


@requirement("5.4 error code mappings: -32001 TaskNotFound, -32002 TaskNotCancelable (JSON-RPC and HTTP 404/400)")
async def test_task_errors_have_their_codes_and_http_statuses(mesh: Mesh, _clause: str) -> None:
    task = await completed_task(mesh)
    assert (await mesh.rpc("GetTask", {"id": "no-such-task"}))["error"]["code"] == -32001
    assert (await mesh.rpc("CancelTask", {"id": "no-such-task"}))["error"]["code"] == -32001
    assert (await mesh.rpc("CancelTask", {"id": task["id"]}))["error"]["code"] == -32002
    not_found = await mesh.rest("GET", "/tasks/no-such-task")
    not_cancelable = await mesh.rest("POST", f"/tasks/{task['id']}:cancel", {})
    assert rest_error(not_found) == (404, "TASK_NOT_FOUND")
    assert rest_error(not_cancelable) == (400, "TASK_NOT_CANCELABLE")


def rest_error(response: httpx.Response) -> tuple[int, str]:
    # requirement: §11.6 google.rpc.Status with an ErrorInfo detail, domain a2a-protocol.org
    error = response.json()["error"]
    assert error["code"] == response.status_code and error["message"]
    [info] = [d for d in error["details"] if d["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"]
    assert info["domain"] == "a2a-protocol.org"
    return response.status_code, info["reason"]


@requirement("13.1 do not reveal existence: an unknown agent answers as an existing one the caller may not reach")
async def test_an_unknown_agent_reads_like_an_unreachable_one(mesh: Mesh, _clause: str) -> None:
    outsider = mesh.headers("finance", "fin-bot")  # finance holds no grant on travel's planner
    answers: list[str] = []
    for agent in ("planner", "nobody1"):  # the same length, so the answers differ only in the name
        rpc = await mesh.rpc("SendMessage", message("hello", agent=agent), headers=outsider)
        response = await mesh.rest("POST", f"/{agent}/message:send", message("hello", agent=agent), headers=outsider)
        rest = response.json()
        for info in (*rpc["error"]["data"], *rest["error"]["details"]):
            info.get("metadata", {}).pop("decision_id", None)
        answers.append(json.dumps([rpc["error"], response.status_code, rest]).replace(agent, "AGENT"))
    assert answers[0] == answers[1]
    assert '"reason": "POLICY_DENIED"' in answers[0]


@requirement("3.3.4 / 5.4 -32003 PushNotificationNotSupported for a target without push notifications")
async def test_push_config_for_an_agent_without_push_is_push_not_supported(mesh: Mesh, _clause: str) -> None:
    config = {"url": "http://127.0.0.1:9/hook"}
    travel = mesh.headers("travel", "trip-bot")
    sent = await mesh.rpc(
        "SendMessage",
        message("3 nights at 100 EUR", agent="planner", configuration={"taskPushNotificationConfig": config}),
        headers=travel,
    )
    assert sent["error"]["code"] == -32003
    response = await mesh.rest(
        "POST",
        "/planner/message:send",
        message("3 nights at 100 EUR", agent="planner") | {"configuration": {"taskPushNotificationConfig": config}},
        headers=travel,
    )
    assert rest_error(response) == (400, "PUSH_NOTIFICATION_NOT_SUPPORTED")


@requirement("3.1.1 / 5.4 -32004 UnsupportedOperation for a message to a terminal task")
async def test_a_message_to_a_terminal_task_is_unsupported_operation(mesh: Mesh, _clause: str) -> None:
    task = await completed_task(mesh)
    again = message(TRANSFER, skill="transfer-funds")
    again["message"] |= {"taskId": task["id"], "contextId": task["contextId"], "messageId": "m-again"}
    assert (await mesh.rpc("SendMessage", again))["error"]["code"] == -32004


@requirement("3.1.1 / 5.4 -32005 ContentTypeNotSupported for a part of a media type the agent does not accept")
async def test_an_unaccepted_media_type_is_content_type_not_supported(mesh: Mesh, _clause: str) -> None:
    request = message("100 EUR to USD", skill="currency-quote")
    request["message"]["parts"] = [{"raw": "dGNr", "mediaType": "application/x-unsupported"}]
    assert (await mesh.rpc("SendMessage", request))["error"]["code"] == -32005
    response = await mesh.rest("POST", "/ledger/message:send", request)
    assert rest_error(response) == (400, "CONTENT_TYPE_NOT_SUPPORTED")


@requirement("3.3.4 GetExtendedAgentCard without capabilities.extendedAgentCard: -32004 UnsupportedOperation")
async def test_the_broker_has_no_extended_card(mesh: Mesh, _clause: str) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        card = (await http.get(f"{mesh.url}/.well-known/agent-card.json")).json()
    assert not card["capabilities"].get("extendedAgentCard")
    assert (await mesh.rpc("GetExtendedAgentCard", {}))["error"]["code"] == -32004
    assert rest_error(await mesh.rest("GET", "/extendedAgentCard")) == (400, "UNSUPPORTED_OPERATION")


# §3.6 versioning


@requirement("3.6.2 an unsupported A2A-Version is -32009 VersionNotSupported (HTTP 400); absent means 0.3")
async def test_an_unsupported_version_is_version_not_supported(mesh: Mesh, _clause: str) -> None:
    v2 = mesh.headers(**{"A2A-Version": "2.0"})
    assert (await mesh.rpc("GetTask", {"id": "x"}, headers=v2))["error"]["code"] == -32009
    assert rest_error(await mesh.rest("GET", "/tasks/x", headers=v2)) == (400, "VERSION_NOT_SUPPORTED")
    # no header: a 0.3 request, and 0.3 has no method `GetTask`
    bare = {"Authorization": mesh.headers()["Authorization"]}
    assert (await mesh.rpc("GetTask", {"id": "x"}, headers=bare))["error"]["code"] == -32009


@requirement("3.6 patch versions are not considered in negotiation")
async def test_a_patch_version_is_accepted(mesh: Mesh, _clause: str) -> None:
    v101 = mesh.headers(**{"A2A-Version": "1.0.1"})
    assert (await mesh.rpc("GetTask", {"id": "x"}, headers=v101))["error"]["code"] == -32001


@requirement("3.6.2 an empty A2A-Version is 0.3: a 0.3 peer's message/send and tasks/get are served")
async def test_an_a2a_0_3_peer_is_served_by_the_compatibility_layer(mesh: Mesh, _clause: str) -> None:
    bare = {"Authorization": mesh.headers()["Authorization"]}
    legacy = {
        "message": {
            "kind": "message",
            "messageId": "legacy-1",
            "role": "user",
            "parts": [{"kind": "text", "text": TRANSFER}],
            "metadata": {"io.meshgate/agent": "ledger", "io.meshgate/skill": "transfer-funds"},
        }
    }
    sent = await mesh.rpc("message/send", legacy, headers=bare)
    task = sent["result"]
    assert (task["kind"], task["status"]["state"]) == ("task", "completed")  # 0.3 shapes and enum values
    got = await mesh.rpc("tasks/get", {"id": task["id"]}, headers=bare)
    assert got["result"]["id"] == task["id"]
    assert (await mesh.rpc("tasks/get", {"id": "nope"}, headers=bare))["error"]["code"] == -32001
    # 0.3 HTTP+JSON: the 0.3 proto's JSON (`content` parts, `ROLE_USER`) under `/v1/`
    meta = {"io.meshgate/agent": "ledger", "io.meshgate/skill": "transfer-funds"}
    rest_legacy: dict[str, Any] = {
        "message": {"messageId": "legacy-2", "role": "ROLE_USER", "content": [{"text": TRANSFER}], "metadata": meta}
    }
    response = await mesh.rest("POST", "/v1/message:send", rest_legacy, headers=bare)
    assert response.status_code == 200, response.text
    assert response.json()["task"]["status"]["state"] == "TASK_STATE_COMPLETED"


# §3.1.2 / §9.4.2 / §11.7 streaming


async def sse_events(mesh: Mesh, url: str, body: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    events: list[dict[str, Any]] = []
    async with httpx.AsyncClient(timeout=15) as http:
        async with http.stream("POST", url, json=body, headers=mesh.headers()) as response:
            assert response.status_code == 200
            buffer = ""
            async for chunk in response.aiter_text():
                buffer += chunk
                *complete, buffer = buffer.replace("\r\n", "\n").split("\n\n")
                for event in complete:
                    data = [
                        line.removeprefix("data:").strip() for line in event.split("\n") if line.startswith("data:")
                    ]
                    if data:
                        events.append(json.loads("\n".join(data)))
            return response.headers["content-type"], events


@requirement("3.1.2 task stream: Task first, updates, closes at a terminal state; 9.4.2 SSE of JSON-RPC responses")
async def test_a_jsonrpc_stream_is_sse_of_json_rpc_responses_ending_at_a_terminal_state(
    mesh: Mesh, _clause: str
) -> None:
    body = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "SendStreamingMessage",
        "params": message(TRANSFER, skill="transfer-funds"),
    }
    with anyio.fail_after(20):
        content_type, events = await sse_events(mesh, f"{mesh.url}/a2a/jsonrpc", body)
    assert content_type.startswith("text/event-stream")
    assert all(e["jsonrpc"] == "2.0" and e["id"] == 7 for e in events)
    kinds = [next(iter(e["result"])) for e in events]
    assert kinds[0] == "task" and set(kinds[1:]) <= {"statusUpdate", "artifactUpdate"}
    assert events[-1]["result"]["statusUpdate"]["status"]["state"] in TERMINAL
    assert "final" not in events[-1]["result"]["statusUpdate"]  # removed in 1.0


@requirement("3.1.2 message-only stream: exactly one Message; 11.7 REST SSE carries StreamResponse objects")
async def test_a_rest_stream_of_a_message_is_exactly_one_message(mesh: Mesh, _clause: str) -> None:
    with anyio.fail_after(20):
        content_type, events = await sse_events(
            mesh, f"{mesh.url}/a2a/rest/ledger/message:stream", message("100 EUR to USD", skill="currency-quote")
        )
    assert content_type.startswith("text/event-stream")
    assert [list(e) for e in events] == [["message"]]


# §3.1.4 ListTasks


@requirement("3.1.4 ListTasks: only the caller's tasks, newest first, nextPageToken always present, no artifacts")
async def test_list_tasks_shows_only_the_callers_tasks_newest_first(mesh: Mesh, _clause: str) -> None:
    first, second = await completed_task(mesh), await completed_task(mesh)
    listed = (await mesh.rpc("ListTasks", {}))["result"]
    assert [t["id"] for t in listed["tasks"]] == [second["id"], first["id"]]
    assert listed["nextPageToken"] == "" and all("artifacts" not in t for t in listed["tasks"])
    paged = (await mesh.rpc("ListTasks", {"pageSize": 1}))["result"]
    assert [t["id"] for t in paged["tasks"]] == [second["id"]] and paged["nextPageToken"]
    rest = await mesh.rest("GET", f"/tasks?pageSize=1&pageToken={paged['nextPageToken']}&includeArtifacts=true")
    assert [t["id"] for t in rest.json()["tasks"]] == [first["id"]] and rest.json()["tasks"][0]["artifacts"]
    other = (await mesh.rpc("ListTasks", {}, headers=mesh.headers("finance", "other-bot")))["result"]
    assert other.get("tasks", []) == [] and other["nextPageToken"] == ""


# §3.1.7-3.1.10 push-notification configs, relayed to an agent that supports them


@asynccontextmanager
async def webhook() -> AsyncGenerator[tuple[str, list[dict[str, Any]], anyio.Event]]:
    received: list[dict[str, Any]] = []
    done = anyio.Event()

    async def hook(request: Request) -> Response:
        received.append({"token": request.headers.get("x-a2a-notification-token"), "body": await request.json()})
        update = received[-1]["body"].get("statusUpdate", {})
        if update.get("status", {}).get("state") in TERMINAL:
            done.set()
        return Response(status_code=204)

    async with serving(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as server:
        yield f"http://127.0.0.1:{server.port}/hook", received, done


@requirement("3.1.7-3.1.10 / 4.3 push-notification configs: create, get, list, delete; the agent POSTs updates")
async def test_push_configs_are_relayed_owner_only_and_the_webhook_is_notified(mesh: Mesh, _clause: str) -> None:
    async with webhook() as (url, received, done):
        config = {"url": url, "token": "tok-1"}
        request = message(TRANSFER, skill="transfer-funds", configuration={"taskPushNotificationConfig": config})
        task = (await mesh.rpc("SendMessage", request))["result"]["task"]
        with anyio.fail_after(10):
            await done.wait()
        assert {r["token"] for r in received} == {"tok-1"}
        assert all(r["body"][next(iter(r["body"]))].get("taskId", task["id"]) == task["id"] for r in received)
        created = await mesh.rpc("CreateTaskPushNotificationConfig", {"taskId": task["id"], "id": "cfg-2", "url": url})
        assert created["result"]["id"] == "cfg-2" and created["result"]["taskId"] == task["id"]
        got = await mesh.rpc("GetTaskPushNotificationConfig", {"taskId": task["id"], "id": "cfg-2"})
        assert got["result"]["url"] == url
        listed = await mesh.rpc("ListTaskPushNotificationConfigs", {"taskId": task["id"]})
        assert "cfg-2" in {c["id"] for c in listed["result"]["configs"]}
        rest = await mesh.rest("GET", f"/tasks/{task['id']}/pushNotificationConfigs")
        assert rest.status_code == 200 and "cfg-2" in {c["id"] for c in rest.json()["configs"]}
        other = mesh.headers("finance", "other-bot")
        for method in ("GetTaskPushNotificationConfig", "DeleteTaskPushNotificationConfig"):
            stranger = await mesh.rpc(method, {"taskId": task["id"], "id": "cfg-2"}, headers=other)
            assert stranger["error"]["code"] == -32001  # someone else's task reads as unknown
        deleted = await mesh.rpc("DeleteTaskPushNotificationConfig", {"taskId": task["id"], "id": "cfg-2"})
        assert "error" not in deleted
        after = await mesh.rpc("ListTaskPushNotificationConfigs", {"taskId": task["id"]})
        assert "cfg-2" not in {c["id"] for c in after["result"].get("configs", [])}
