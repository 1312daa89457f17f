"""The engine seam: one protocol every model engine implements (llama.cpp on the CPU, vLLM on a GPU).

Pure domain types, no gRPC and no engine imports: the node service (`service.py`) adapts the wire to
these, and each engine module adapts its library to them. Token counts travel in every chunk so a
caller that stops reading early still knows what was spent.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Literal, Protocol

FinishReason = Literal["stop", "length", "cancelled"]


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """One generation. Exactly one of `prompt` (raw text) or `messages` (rendered with the model's chat template)."""

    request_id: str
    prompt: str = ""
    messages: tuple[ChatMessage, ...] = ()
    max_tokens: int = 128
    temperature: float = 0.0
    """0 is greedy decoding: the same prompt gives the same tokens (tests rely on it)."""
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if bool(self.prompt) == bool(self.messages):
            raise ValueError("give exactly one of prompt or messages")
        if self.max_tokens < 1:
            raise ValueError("max_tokens must be at least 1")


@dataclass(frozen=True, slots=True)
class GenerationChunk:
    """A piece of a generation. `text` is the new text since the previous chunk; counts are running totals."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: FinishReason | None = None
    """Set on the last chunk only."""
    cached_prompt_tokens: int = 0
    """Prompt tokens the engine reused from its prefix cache (0 where the engine cannot tell)."""


@dataclass(frozen=True, slots=True)
class EngineInfo:
    model: str
    """The model id the mesh knows it by (`smollm2`): tool `<model>_generate`, agent `<model>`."""
    engine: str
    """`llama.cpp` or `vllm`."""
    context_tokens: int
    description: str = ""


class EngineClient(Protocol):
    """A loaded model. Implementations: `cpu_engine.LlamaCppEngine`, `vllm_engine.VllmEngine`."""

    @property
    def info(self) -> EngineInfo: ...

    def generate(self, request: GenerationRequest) -> AsyncGenerator[GenerationChunk, None]:
        """Stream the generation. Closing the iterator early (the client went away) cancels it in the engine.

        Raises:
            EngineError: the engine failed; the message is safe to show.
        """
        ...

    async def aclose(self) -> None: ...
