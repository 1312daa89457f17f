"""The broker's one a2a-sdk `RequestHandler`: JSON-RPC, HTTP+JSON and gRPC all dispatch into it.

Per call: principal (from the call context) → target agent (the A2A `tenant` field names it) →
task ownership → decision (`PolicyGate`, fail closed) → relay to the target with the broker's own
credentials → answer relayed back (streams event by event) → audit with the outcome. Meshgate errors
leave as A2A errors (`wire_errors`). ListTasks lists the caller's own tasks (each read from its agent
and decided as a task get); push-notification configs are relayed, owner-only like tasks, to a target
whose card declares `capabilities.pushNotifications` (else -32003). The broker has no extended card.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Generator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast

from a2a.client import Client, ClientCallContext
from a2a.server.context import ServerCallContext
from a2a.server.events import Event
from a2a.server.request_handlers import RequestHandler
from a2a.types import (
    AgentCard,
    CancelTaskRequest,
    DeleteTaskPushNotificationConfigRequest,
    GetExtendedAgentCardRequest,
    GetTaskPushNotificationConfigRequest,
    GetTaskRequest,
    ListTaskPushNotificationConfigsRequest,
    ListTaskPushNotificationConfigsResponse,
    ListTasksRequest,
    ListTasksResponse,
    Message,
    SendMessageRequest,
    StreamResponse,
    SubscribeToTaskRequest,
    Task,
    TaskPushNotificationConfig,
)
from a2a.utils.errors import (
    A2AError,
    InvalidParamsError,
    PushNotificationNotSupportedError,
    TaskNotFoundError,
    UnsupportedOperationError,
)
from google.protobuf.json_format import MessageToDict

from a2a_broker.delegation import (
    AGENT_KEY,
    DELEGATION_KEY,
    SEAL_KEY,
    ChainSeal,
    DelegationInvalid,
    TaskEntry,
    TaskOwners,
    agent_resource,
    extended_chain,
    named_skill,
    owner_key,
    requested_skill,
    task_resource,
)
from a2a_broker.identity import PrincipalUser
from a2a_broker.metering import BrokerMeter
from a2a_broker.obligations import screen_message
from a2a_broker.policy import CallInfo, Check, PolicyGate
from a2a_broker.relay import Relay, Target, stored_card
from a2a_broker.wire_errors import to_a2a_error
from meshgate.errors import AgentNotFound, MeshError, NotFound, Unauthenticated
from meshgate.principal import ANONYMOUS, Principal
from policies.input import DelegationHop
from registry.models import AgentRecord


class AgentDirectory(Protocol):
    """Where registered agents are looked up (the registry store satisfies it)."""

    def get_agent(self, agent_id: str) -> AgentRecord: ...

    def list_agents(self) -> list[AgentRecord]: ...


@dataclass(frozen=True, slots=True)
class _Resolved:
    principal: Principal
    record: AgentRecord
    card: AgentCard

    @property
    def target(self) -> Target:
        return Target(self.record.agent_id, self.record.card_json)


class BrokerRequestHandler(RequestHandler):
    def __init__(
        self,
        directory: AgentDirectory,
        gate: PolicyGate,
        relay: Relay,
        owners: TaskOwners,
        *,
        allow_anonymous: bool,
        meter: BrokerMeter | None = None,
        seal: ChainSeal | None = None,
    ) -> None:
        self._directory = directory
        self._meter = meter or BrokerMeter(None, frozenset())
        self._gate = gate
        self._relay = relay
        self._owners = owners
        self._allow_anonymous = allow_anonymous
        self._seal = seal or ChainSeal()  # the registry's shared seal (`build_broker`); random: this process only

    # Messages
    async def on_message_send(self, params: SendMessageRequest, context: ServerCallContext) -> Task | Message:
        with _on_the_wire():
            resolved, check, forwarded = self._message_call("a2a.message/send", params, context)
            outcome = "error"
            try:
                response = await self._relay.send(resolved.target, forwarded)
                self._remember(response, resolved, check)
                self._meter.observe(resolved.record.agent_id, check, _event(response))
                outcome = "ok"
            except MeshError as exc:
                outcome = exc.code
                raise
            finally:
                check.record(outcome)
            return response.task if response.HasField("task") else response.message

    async def on_message_send_stream(
        self, params: SendMessageRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event]:
        with _on_the_wire():
            resolved, check, forwarded = self._message_call("a2a.message/stream", params, context)
        stream = self._relay.stream(resolved.target, forwarded)
        async for event in self._relayed(stream, resolved, check, metered=True):
            yield event

    # Tasks
    async def on_get_task(self, params: GetTaskRequest, context: ServerCallContext) -> Task | None:
        with _on_the_wire():
            resolved, check = self._task_call("a2a.tasks/get", params.id, params.tenant, context)
            forwarded = GetTaskRequest()
            forwarded.CopyFrom(params)
            forwarded.tenant = ""
            return await self._relayed_call(self._relay.get_task(resolved.target, forwarded), check)

    async def on_cancel_task(self, params: CancelTaskRequest, context: ServerCallContext) -> Task | None:
        with _on_the_wire():
            resolved, check = self._task_call("a2a.tasks/cancel", params.id, params.tenant, context)
            forwarded = CancelTaskRequest()
            forwarded.CopyFrom(params)
            forwarded.tenant = ""
            return await self._relayed_call(self._relay.cancel_task(resolved.target, forwarded), check)

    async def on_subscribe_to_task(
        self, params: SubscribeToTaskRequest, context: ServerCallContext
    ) -> AsyncGenerator[Event]:
        # Subscribing reads the task, so it is decided as `a2a.tasks/get`.
        with _on_the_wire():
            resolved, check = self._task_call("a2a.tasks/get", params.id, params.tenant, context)
            forwarded = SubscribeToTaskRequest(id=params.id)
        async for event in self._relayed(self._relay.subscribe(resolved.target, forwarded), resolved, check):
            yield event

    async def on_list_tasks(self, params: ListTasksRequest, context: ServerCallContext) -> ListTasksResponse:
        # Spec §3.1.4/§13.1: only the caller's own tasks. Each is read from its agent now (current state) and
        # decided as a task get; one the policy no longer allows, or whose agent is gone, is left out.
        with _on_the_wire():
            principal = self._principal(context)
            size = params.page_size if params.HasField("page_size") else _PAGE_SIZE
            if not 1 <= size <= _MAX_PAGE_SIZE or (params.HasField("history_length") and params.history_length < 0):
                raise InvalidParamsError(f"pageSize must be 1..{_MAX_PAGE_SIZE} and historyLength not negative")
            offset = _page_offset(params.page_token)
            tasks: list[Task] = []
            for task_id, entry in self._owners.owned_by(owner_key(principal)):
                if params.tenant and params.tenant != entry.agent_id:
                    continue
                task = await self._listed_task(task_id, entry.agent_id, params, context)
                if task is not None and _listed(task, params):
                    tasks.append(task)
        tasks.sort(key=lambda t: t.status.timestamp.ToNanoseconds(), reverse=True)
        page = tasks[offset : offset + size]
        for task in page:
            if not params.include_artifacts:
                task.ClearField("artifacts")
        more = offset + size < len(tasks)
        return ListTasksResponse(
            tasks=page,
            next_page_token=_page_token(offset + size) if more else "",
            page_size=size,
            total_size=len(tasks),
        )

    async def _listed_task(
        self, task_id: str, agent_id: str, params: ListTasksRequest, context: ServerCallContext
    ) -> Task | None:
        request = GetTaskRequest(id=task_id)
        if params.HasField("history_length"):
            request.history_length = params.history_length
        try:
            resolved, check = self._task_call("a2a.tasks/get", task_id, agent_id, context)
        except (MeshError, TaskNotFoundError):
            return None
        try:
            return await self._relayed_call(self._relay.get_task(resolved.target, request), check)
        except (MeshError, A2AError):  # the agent is gone or forgot the task: not listed
            return None

    # Push-notification configs: relayed to a target that supports them, owner-only like tasks.
    async def on_create_task_push_notification_config(
        self, params: TaskPushNotificationConfig, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        def call(client: Client, ctx: ClientCallContext) -> Awaitable[TaskPushNotificationConfig]:
            return client.create_task_push_notification_config(_untenanted(params), context=ctx)

        return await self._push_call("a2a.tasks/pushNotificationConfig/create", params, call, context)

    async def on_get_task_push_notification_config(
        self, params: GetTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> TaskPushNotificationConfig:
        def call(client: Client, ctx: ClientCallContext) -> Awaitable[TaskPushNotificationConfig]:
            return client.get_task_push_notification_config(_untenanted(params), context=ctx)

        return await self._push_call("a2a.tasks/pushNotificationConfig/get", params, call, context)

    async def on_list_task_push_notification_configs(
        self, params: ListTaskPushNotificationConfigsRequest, context: ServerCallContext
    ) -> ListTaskPushNotificationConfigsResponse:
        def call(client: Client, ctx: ClientCallContext) -> Awaitable[ListTaskPushNotificationConfigsResponse]:
            return client.list_task_push_notification_configs(_untenanted(params), context=ctx)

        return await self._push_call("a2a.tasks/pushNotificationConfig/list", params, call, context)

    async def on_delete_task_push_notification_config(
        self, params: DeleteTaskPushNotificationConfigRequest, context: ServerCallContext
    ) -> None:
        def call(client: Client, ctx: ClientCallContext) -> Awaitable[None]:
            return client.delete_task_push_notification_config(_untenanted(params), context=ctx)

        await self._push_call("a2a.tasks/pushNotificationConfig/delete", params, call, context)

    async def _push_call(
        self,
        action: str,
        params: _PushParams,
        call: Callable[[Client, ClientCallContext], Awaitable[T]],
        context: ServerCallContext,
    ) -> T:
        with _on_the_wire():
            resolved, check = self._task_call(action, params.task_id, params.tenant, context)
            if not resolved.card.capabilities.push_notifications:
                check.record(PUSH_UNSUPPORTED)
                raise PushNotificationNotSupportedError
            return await self._relayed_call(self._relay.call(resolved.target, call), check)

    async def on_get_extended_agent_card(
        self, params: GetExtendedAgentCardRequest, context: ServerCallContext
    ) -> AgentCard:
        # The broker's card does not declare `capabilities.extendedAgentCard`: spec §3.3.4 names this error.
        raise UnsupportedOperationError("the broker has no extended agent card")

    # Steps
    def _message_call(
        self, action: str, params: SendMessageRequest, context: ServerCallContext
    ) -> tuple[_Resolved, Check, SendMessageRequest]:
        wire = MessageToDict(params.message)  # once: the metadata and the policy's view of the parts both come from it
        metadata: dict[str, Any] = wire.get("metadata", {})
        # A2A 0.3 requests have no `tenant`: such a peer names the agent in message metadata instead.
        agent = params.tenant or context.tenant or str(metadata.get(AGENT_KEY, ""))
        principal = self._principal(context)
        record = self._lookup(agent)
        if params.message.task_id and self._owners.owned(params.message.task_id, owner_key(principal)) is None:
            raise TaskNotFoundError  # continuing someone else's task: as if it did not exist
        try:
            chain = extended_chain(metadata, principal, agent, self._seal)
            self._check_continuation(chain, principal)
        except DelegationInvalid as exc:
            raise InvalidParamsError(str(exc)) from exc
        # An unknown agent is decided too (organisation "", no card skills) and audited as
        # `agent_not_found`: a principal the policy would not let reach it gets the same denial as for an
        # agent that exists (spec §13.1: do not reveal existence); only an allowed one learns -32038.
        card = stored_card(record.card_json) if record is not None else None
        skill = requested_skill(metadata, [s.id for s in card.skills] if card is not None else [])
        check = self._gate.check(
            principal,
            action,
            agent_resource(agent, record.organization if record is not None else "", skill),
            message={"parts": wire.get("parts", []), "role": wire.get("role", ""), "skill": named_skill(metadata)},
            delegation=chain,
            call=_call_info(context),
            denied_outcome="denied" if record is not None else AgentNotFound.code,
        )
        if record is None or card is None:
            check.record(AgentNotFound.code)
            raise AgentNotFound(f"no agent {agent!r} is registered with the broker", agent=agent)
        resolved = _Resolved(principal, record, card)
        forwarded = SendMessageRequest()
        forwarded.CopyFrom(params)
        forwarded.tenant = ""  # the target's interface supplies its own tenant
        if forwarded.configuration.HasField("task_push_notification_config"):
            if not resolved.card.capabilities.push_notifications:
                check.record(PUSH_UNSUPPORTED)
                raise PushNotificationNotSupportedError
        hops: list[Any] = [dict(hop) for hop in chain]
        forwarded.message.metadata.update({DELEGATION_KEY: hops, SEAL_KEY: self._seal.of(chain)})
        screen_message(check, forwarded.message)  # obligations: may refuse, or redact what is relayed
        return resolved, check, forwarded

    def _check_continuation(self, chain: list[DelegationHop], principal: Principal) -> None:
        # A sealed chain may be continued only from inside the organisation of the agent it was sent to.
        if len(chain) < 2:
            return
        try:
            organization = self._directory.get_agent(chain[-2]["agent"]).organization
        except NotFound:
            organization = ""
        if organization != principal.tenant:
            raise DelegationInvalid(f"only organisation {organization or '?'} may continue this delegation chain")

    def _task_call(self, action: str, task_id: str, tenant: str, context: ServerCallContext) -> tuple[_Resolved, Check]:
        principal = self._principal(context)
        # Ownership first, before any lookup or upstream call: another principal's task and an unknown
        # one get the same answer (spec §13.1: do not reveal existence).
        entry = self._owners.owned(task_id, owner_key(principal))
        if entry is None or (tenant and tenant != entry.agent_id):
            raise TaskNotFoundError
        resolved = self._resolve(entry.agent_id, context)
        check = self._gate.check(
            principal,
            action,
            task_resource(task_id, entry.agent_id, resolved.record.organization, entry.skill),
            message=None,
            delegation=[],
            call=_call_info(context),
        )
        return resolved, check

    def _resolve(self, agent_id: str, context: ServerCallContext) -> _Resolved:
        principal = self._principal(context)
        record = self._lookup(agent_id)
        if record is None:
            raise AgentNotFound(f"no agent {agent_id!r} is registered with the broker", agent=agent_id)
        return _Resolved(principal, record, stored_card(record.card_json))

    def _lookup(self, agent_id: str) -> AgentRecord | None:
        if not agent_id:
            raise InvalidParamsError("address the call to a registered agent: set `tenant` to its agent id")
        try:
            return self._directory.get_agent(agent_id)
        except NotFound:
            return None

    def _principal(self, context: ServerCallContext) -> Principal:
        user = context.user
        if isinstance(user, PrincipalUser):
            return user.principal
        if self._allow_anonymous:
            return ANONYMOUS
        raise Unauthenticated("no authenticated principal on this call")

    def _remember(self, response: StreamResponse | Event, resolved: _Resolved, check: Check) -> None:
        task_id = _task_id(response)
        if task_id:
            entry = TaskEntry(owner_key(resolved.principal), resolved.record.agent_id, _skill_of(check))
            self._owners.remember(task_id, entry)

    async def _relayed_call(self, call: Awaitable[T], check: Check) -> T:
        outcome = "error"
        try:
            answer = await call
            outcome = "ok"
            return answer
        except MeshError as exc:
            outcome = exc.code
            raise
        finally:
            check.record(outcome)

    async def _relayed(
        self, stream: AsyncIterator[StreamResponse], resolved: _Resolved, check: Check, *, metered: bool = False
    ) -> AsyncGenerator[Event]:
        """Relay a target's events. `metered`: the message stream itself, where a model's usage is counted
        (a resubscription sees the same final event again and must not count it twice)."""
        outcome = "disconnected"
        try:
            async for response in stream:
                event = _event(response)
                self._remember(event, resolved, check)
                if metered:
                    self._meter.observe(resolved.record.agent_id, check, event)
                yield event
            outcome = "ok"
        except MeshError as exc:
            outcome = exc.code
            raise to_a2a_error(exc) from exc
        finally:
            check.record(outcome)


@contextmanager
def _on_the_wire() -> Generator[None]:
    try:
        yield
    except MeshError as exc:
        raise to_a2a_error(exc) from exc


_PAGE_SIZE = 50
_MAX_PAGE_SIZE = 100
PUSH_UNSUPPORTED = "push_notification_not_supported"
"""The audit outcome of an allowed call refused because the target has no push notifications."""
T = TypeVar("T")
_PushParams = (
    TaskPushNotificationConfig
    | GetTaskPushNotificationConfigRequest
    | ListTaskPushNotificationConfigsRequest
    | DeleteTaskPushNotificationConfigRequest
)
_Untenanted = TypeVar("_Untenanted", bound=_PushParams)


def _untenanted(params: _Untenanted) -> _Untenanted:
    forwarded = type(params)()
    forwarded.MergeFromString(params.SerializeToString())  # CopyFrom's stubs reject a union-bound TypeVar
    forwarded.tenant = ""  # the target's interface supplies its own tenant
    return forwarded


def _page_offset(token: str) -> int:
    if not token:
        return 0
    try:
        return int(base64.urlsafe_b64decode(token.encode()).decode().removeprefix("offset:"))
    except ValueError:
        raise InvalidParamsError("pageToken is not one this broker issued") from None


def _page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def _listed(task: Task, params: ListTasksRequest) -> bool:
    if params.context_id and task.context_id != params.context_id:
        return False
    if params.status and task.status.state != params.status:
        return False
    if not params.HasField("status_timestamp_after"):
        return True
    return task.status.timestamp.ToNanoseconds() > params.status_timestamp_after.ToNanoseconds()


def _call_info(context: ServerCallContext) -> CallInfo:
    raw = context.state.get("headers")
    headers: Mapping[str, str] = cast(Mapping[str, str], raw) if isinstance(raw, dict) else {}
    size = context.state.get("request_size", 0)
    return CallInfo(
        client=headers.get("user-agent", ""),
        request_size=size if isinstance(size, int) else 0,
        protocol_version=headers.get("a2a-version", "") or "0.3",
    )


def _skill_of(check: Check) -> str:
    return check.policy_input["resource"].get("skill", "")


def _event(response: StreamResponse) -> Event:
    kind = response.WhichOneof("payload")
    if kind == "task":
        return response.task
    if kind == "message":
        return response.message
    if kind == "status_update":
        return response.status_update
    if kind == "artifact_update":
        return response.artifact_update
    raise to_a2a_error(MeshError("the target agent sent an empty stream event"))


def _task_id(response: StreamResponse | Event) -> str:
    if isinstance(response, StreamResponse):
        if response.HasField("task"):
            return response.task.id
        if response.HasField("message"):
            return response.message.task_id
        return ""
    if isinstance(response, Task):
        return response.id
    return response.task_id
