"""Test doubles for unit tests of routing only: the real CPU model runs in e2e tests (STYLE §5).

`FakeEngine` is an `EngineClient` and also a `routing.NodeClientLike`, so a test can stand it in for a
node's connection. Its text is deterministic, its pace is driven by the test, and it fails on demand.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import anyio

from inference_node.engine import EngineInfo, GenerationChunk, GenerationRequest
from inference_node.router import render_prompt
from meshgate.errors import MeshError, NodeUnavailable

WORDS = ("the", " quick", " brown", " fox", " jumps", " over", " the", " lazy", " dog", ".")


class FakeEngine:
    """Streams one word per chunk from `WORDS`, up to `max_tokens`, with token counts that add up.

    Args:
        fail_after: raise `failure` after this many chunks (0: before the first).
        stall_after: after this many chunks wait forever (until cancelled): a node gone silent.
        before_token: awaited before each chunk with its index; a test gates the pace with it
            (an `anyio.Event`, a step of a fake clock) instead of sleeping.
    """

    def __init__(
        self,
        model: str = "fake",
        *,
        fail_after: int | None = None,
        failure: Callable[[], MeshError] = lambda: NodeUnavailable("the fake node is down"),
        stall_after: int | None = None,
        before_token: Callable[[int], Awaitable[None]] | None = None,
    ) -> None:
        self.fail_after = fail_after
        self.failure = failure
        self.stall_after = stall_after
        self.before_token = before_token
        self.requests: list[GenerationRequest] = []
        self.completed = 0
        self.cancelled = 0
        """Generations abandoned by the caller: closed early or cancelled while waiting."""
        self.closed = False
        self._info = EngineInfo(model=model, engine="fake", context_tokens=4096, description="a test double")

    @property
    def info(self) -> EngineInfo:
        return self._info

    def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationChunk]:
        self.requests.append(request)
        return self._stream(request)

    async def _stream(self, request: GenerationRequest) -> AsyncIterator[GenerationChunk]:
        prompt_tokens = prompt_token_count(request)
        count = min(request.max_tokens, len(WORDS))
        try:
            for index in range(count):
                if index == self.fail_after:
                    raise self.failure()
                if index == self.stall_after:
                    await anyio.Event().wait()
                if self.before_token is not None:
                    await self.before_token(index)
                last = index == count - 1
                finish = None if not last else ("stop" if count == len(WORDS) else "length")
                yield GenerationChunk(WORDS[index], prompt_tokens, index + 1, finish_reason=finish)
        except (GeneratorExit, anyio.get_cancelled_exc_class()):
            self.cancelled += 1
            raise
        self.completed += 1

    async def aclose(self) -> None:
        self.closed = True


def prompt_token_count(request: GenerationRequest) -> int:
    """About four characters a token, like the English text of small models' tokenizers."""
    return max(1, len(render_prompt(request)) // 4)
