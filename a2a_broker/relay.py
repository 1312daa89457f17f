"""The broker's side toward target agents: the a2a-sdk client, the broker's own credentials, deadlines.

A target is reached on its stored card's preferred interface (the first of `supportedInterfaces` the
SDK client speaks: JSON-RPC, HTTP+JSON or gRPC) with the headers configured for that agent in
`broker.credentials` — never the caller's. Every wait on a target is bounded by `timeout_s` (a blocking
call as a whole, a stream per event). Client failures leave here as meshgate errors (`raise X from
exc`); an A2A error the target answered (task not found, not cancelable, …) is re-raised as the same
A2A class with its standard message, so no target text reaches the caller.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import anyio
import httpx
from a2a.client import A2AClientError, A2AClientTimeoutError, Client, ClientCallContext, ClientConfig, ClientFactory
from a2a.types import (
    AgentCard,
    CancelTaskRequest,
    GetTaskRequest,
    SendMessageRequest,
    StreamResponse,
    SubscribeToTaskRequest,
    Task,
)
from a2a.utils.constants import TransportProtocol
from a2a.utils.errors import A2AError
from google.protobuf.json_format import ParseDict, ParseError

from meshgate.errors import CardInvalid, UpstreamError, UpstreamTimeout, UpstreamUnavailable

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Target:
    """A registered agent as the relay needs it."""

    agent_id: str
    card_json: str


def parse_card(card_json: str) -> AgentCard:
    """The stored card as the SDK's type (unknown fields, e.g. legacy 0.3 ones, ignored).

    Raises:
        CardInvalid: the stored card is not an A2A 1.0 agent card.
    """
    try:
        return ParseDict(json.loads(card_json), AgentCard(), ignore_unknown_fields=True)
    except (ValueError, ParseError) as exc:
        raise CardInvalid("the stored agent card does not parse") from exc


@functools.lru_cache(maxsize=128)
def stored_card(card_json: str) -> AgentCard:
    """`parse_card`, memoised on the card's exact text; the returned card is shared, so callers only read it.

    Every relayed call reads its target's card, and parsing one was ~4 % of the broker's CPU per call; a
    re-registered card is a different text, hence parsed afresh.

    Raises:
        CardInvalid: the stored card is not an A2A 1.0 agent card (not cached).
    """
    return parse_card(card_json)


class Relay:
    def __init__(self, http: httpx.AsyncClient, *, timeout_s: float, credentials: Mapping[str, Mapping[str, str]]):
        self._http = http
        self._timeout_s = timeout_s
        self._credentials = credentials
        self._clients: dict[tuple[str, str, bool], Client] = {}

    async def send(self, target: Target, request: SendMessageRequest) -> StreamResponse:
        """The target's answer to a blocking (or `returnImmediately`) send: one Task or Message."""
        client = self._client(target, streaming=False)

        async def first() -> StreamResponse:
            async for response in client.send_message(request, context=self._context(target)):
                return response
            raise UpstreamError("the target agent sent no response")

        return await self._bounded(first())

    async def stream(self, target: Target, request: SendMessageRequest) -> AsyncIterator[StreamResponse]:
        """The target's events, each yielded as soon as it arrives."""
        client = self._client(target, streaming=True)
        async for response in self._bounded_stream(client.send_message(request, context=self._context(target))):
            yield response

    async def subscribe(self, target: Target, request: SubscribeToTaskRequest) -> AsyncIterator[StreamResponse]:
        client = self._client(target, streaming=True)
        async for response in self._bounded_stream(client.subscribe(request, context=self._context(target))):
            yield response

    async def get_task(self, target: Target, request: GetTaskRequest) -> Task:
        client = self._client(target, streaming=False)
        return await self._bounded(client.get_task(request, context=self._context(target)))

    async def cancel_task(self, target: Target, request: CancelTaskRequest) -> Task:
        client = self._client(target, streaming=False)
        return await self._bounded(client.cancel_task(request, context=self._context(target)))

    async def call(self, target: Target, call: Callable[[Client, ClientCallContext], Awaitable[T]]) -> T:
        """Any other unary call on the target's client (push-notification configs), bounded like the rest."""
        client = self._client(target, streaming=False)
        return await self._bounded(call(client, self._context(target)))

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.close()
        self._clients.clear()

    def _client(self, target: Target, *, streaming: bool) -> Client:
        key = (target.agent_id, hashlib.sha256(target.card_json.encode()).hexdigest(), streaming)
        client = self._clients.get(key)
        if client is None:
            bindings = [TransportProtocol.JSONRPC.value, TransportProtocol.HTTP_JSON.value]
            config = ClientConfig(streaming=streaming, httpx_client=self._http, supported_protocol_bindings=bindings)
            try:
                import grpc.aio

                config.grpc_channel_factory = grpc.aio.insecure_channel
                bindings.append(TransportProtocol.GRPC.value)
            except ImportError:  # the grpc extra is optional: such targets are reached on another binding
                pass
            try:
                client = ClientFactory(config).create(parse_card(target.card_json))
            except (ValueError, A2AError) as exc:
                raise UpstreamUnavailable(f"agent {target.agent_id}: no interface the broker speaks") from exc
            self._clients[key] = client
        return client

    def _context(self, target: Target) -> ClientCallContext:
        headers = dict(self._credentials.get(target.agent_id, {}))
        return ClientCallContext(timeout=self._timeout_s, service_parameters=headers or None)

    async def _bounded(self, call: Awaitable[T]) -> T:
        try:
            with anyio.fail_after(self._timeout_s):
                return await call
        except Exception as exc:
            mapped = _mapped(exc)
            if mapped is exc:
                raise
            raise mapped from exc

    async def _bounded_stream(self, stream: AsyncIterator[StreamResponse]) -> AsyncIterator[StreamResponse]:
        iterator = aiter(stream)
        next_event: Callable[[], Awaitable[StreamResponse]] = iterator.__anext__
        while True:
            try:
                with anyio.fail_after(self._timeout_s):
                    response = await next_event()
            except StopAsyncIteration:
                return
            except Exception as exc:
                mapped = _mapped(exc)
                if mapped is exc:
                    raise
                raise mapped from exc
            yield response


def _mapped(exc: Exception) -> Exception:
    """What a failure talking to a target leaves the relay as; anything else unchanged."""
    if isinstance(exc, TimeoutError | A2AClientTimeoutError):
        return UpstreamTimeout("the target agent did not answer in time")
    if isinstance(exc, A2AClientError):
        if isinstance(exc.__cause__, httpx.TransportError) or _grpc_unavailable(exc):
            return UpstreamUnavailable("the target agent is unreachable")
        return UpstreamError("the target agent's answer could not be used")
    if isinstance(exc, A2AError):
        return type(exc)()  # the target's A2A error, with the standard message only
    if isinstance(exc, httpx.TransportError):
        return UpstreamUnavailable("the target agent is unreachable")
    return exc


def _grpc_unavailable(exc: BaseException) -> bool:
    cause = exc.__cause__
    code = getattr(cause, "code", None)
    return callable(code) and getattr(code(), "name", "") == "UNAVAILABLE"
