"""`VllmEngine`: vLLM's in-process async engine (V1 `AsyncLLM`) behind the `EngineClient` protocol.

The only module that imports vllm, lazily: a base install raises `MissingDependency(extra="vllm")`.
API checked against the vllm 0.33.0 wheel's source (PyPI, November 2026) and vllm-project/vllm main:
`vllm/v1/engine/async_llm.py` — `AsyncLLM.from_engine_args(AsyncEngineArgs)`, `generate(prompt,
sampling_params, request_id)` an async generator of `RequestOutput` that aborts the request itself on
`GeneratorExit`/`CancelledError`, `abort(request_id)` (a no-op for finished ids), `get_tokenizer()` (not a
coroutine in 0.33), `shutdown()`; `vllm/outputs.py` — `RequestOutput.prompt_token_ids`, `.num_cached_tokens`,
`CompletionOutput.token_ids/text/finish_reason`; `vllm/sampling_params.py` — `SamplingParams(max_tokens,
temperature, top_p, seed, stop, output_kind)` with `RequestOutputKind.DELTA` (each output carries only the
new tokens and text). Not yet run on a GPU.
"""

# vllm is an optional extra (absent from type-checking environments): its types are unknown to pyright here.
# pyright: reportUnknownMemberType=false, reportUnknownVariableType=false, reportUnknownArgumentType=false

from __future__ import annotations

import contextlib
import inspect
import logging
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

import anyio

from inference_node.engine import EngineInfo, FinishReason, GenerationChunk, GenerationRequest
from meshgate.errors import EngineError, InvalidArguments, MissingDependency

logger = logging.getLogger(__name__)

ENGINE_NAME = "vllm"


@dataclass(frozen=True, slots=True)
class VllmConfig:
    model: str
    """The model id the mesh knows it by."""
    weights: str
    """A model directory or Hugging Face model id, as `vllm serve` takes it."""
    max_model_len: int = 2048
    gpu_memory_utilization: float = 0.85
    enable_prefix_caching: bool = True
    """Automatic prefix caching: requests sharing a prompt prefix reuse its KV blocks."""
    seed: int = 0


def _import_vllm() -> Any:
    try:
        import vllm  # pyright: ignore[reportMissingImports]
    except ImportError as exc:
        raise MissingDependency("vllm", extra="vllm") from exc
    return vllm  # pyright: ignore[reportUnknownVariableType]


class VllmEngine:
    """A model on a GPU. Build with `await VllmEngine.open(config)`; close with `aclose()`."""

    def __init__(self, engine: Any, info: EngineInfo, tokenizer: Any) -> None:
        self._engine = engine
        self._info = info
        self._tokenizer = tokenizer

    @classmethod
    async def open(cls, config: VllmConfig) -> VllmEngine:
        """Start vLLM's engine (its core runs in a child process) and load the weights.

        Raises:
            MissingDependency: vllm is not installed (extra `vllm`).
            EngineError: vLLM failed to start.
        """
        _import_vllm()
        from vllm.engine.arg_utils import AsyncEngineArgs  # pyright: ignore[reportMissingImports, reportUnknownVariableType]
        from vllm.v1.engine.async_llm import AsyncLLM  # pyright: ignore[reportMissingImports, reportUnknownVariableType]

        args = AsyncEngineArgs(
            model=config.weights,
            max_model_len=config.max_model_len,
            gpu_memory_utilization=config.gpu_memory_utilization,
            enable_prefix_caching=config.enable_prefix_caching,
            seed=config.seed,
        )
        try:
            engine: Any = AsyncLLM.from_engine_args(args)
            tokenizer: Any = engine.get_tokenizer()
            if inspect.isawaitable(tokenizer):  # a coroutine in older releases, plain in 0.33
                tokenizer = await tokenizer
        except Exception as exc:  # vLLM raises many kinds at start (CUDA, config, weights)
            logger.exception("vLLM failed to start with %s", config.weights)
            raise EngineError(f"vLLM could not load {config.model!r}") from exc
        info = EngineInfo(
            model=config.model,
            engine=ENGINE_NAME,
            context_tokens=config.max_model_len,
            description=f"{config.weights} on vLLM",
        )
        return cls(engine, info, tokenizer)

    @property
    def info(self) -> EngineInfo:
        return self._info

    def render_prompt(self, request: GenerationRequest) -> str:
        """Raw text, or the messages through the tokenizer's chat template (as vLLM's chat endpoint does).

        Raises:
            InvalidArguments: chat messages but the tokenizer has no chat template.
        """
        if not request.messages:
            return request.prompt
        conversation = [{"role": m.role, "content": m.content} for m in request.messages]
        try:
            rendered: Any = self._tokenizer.apply_chat_template(
                conversation, tokenize=False, add_generation_prompt=True
            )
        except (ValueError, AttributeError) as exc:
            raise InvalidArguments(f"model {self._info.model!r} has no chat template; send a prompt") from exc
        return str(rendered)

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[GenerationChunk, None]:
        """Stream the generation; closing the iterator early aborts the request in vLLM.

        Raises:
            InvalidArguments: vLLM rejected the request (e.g. the prompt is longer than the context).
            EngineError: vLLM failed; the message is safe to show.
        """
        from vllm import SamplingParams  # pyright: ignore[reportMissingImports, reportUnknownVariableType]
        from vllm.sampling_params import RequestOutputKind  # pyright: ignore[reportMissingImports, reportUnknownVariableType]

        params = SamplingParams(
            max_tokens=request.max_tokens,
            temperature=request.temperature,
            top_p=request.top_p,
            seed=request.seed,
            stop=list(request.stop) or None,
            output_kind=RequestOutputKind.DELTA,
        )
        prompt_tokens = completion = cached = 0
        finished = False
        # A TextPrompt dict: 0.33 deprecates passing the prompt as a bare string.
        prompt = {"prompt": self.render_prompt(request)}
        outputs: Any = self._engine.generate(prompt, params, request.request_id)
        try:
            async with contextlib.aclosing(outputs):
                async for output in outputs:
                    if output.prompt_token_ids is not None:
                        prompt_tokens = len(output.prompt_token_ids)
                    if getattr(output, "num_cached_tokens", None) is not None:
                        cached = int(output.num_cached_tokens)
                    piece = output.outputs[0]
                    completion += len(piece.token_ids)
                    finish = _finish_reason(piece.finish_reason) if output.finished else None
                    finished = output.finished
                    yield GenerationChunk(
                        text=piece.text,
                        prompt_tokens=prompt_tokens,
                        completion_tokens=completion,
                        finish_reason=finish,
                        cached_prompt_tokens=cached,
                    )
        except ValueError as exc:  # vLLM's request validation (prompt too long, bad parameters)
            logger.info("vLLM rejected %s: %s", request.request_id, exc)
            raise InvalidArguments("vLLM rejected the request (is the prompt longer than the context?)") from exc
        except (EngineError, InvalidArguments):
            raise
        except Exception as exc:  # EngineGenerateError, EngineDeadError: their text is vLLM's, not shown
            logger.exception("vLLM failed generating %s", request.request_id)
            raise EngineError("the model engine failed while generating") from exc
        finally:
            if not finished:
                # AsyncLLM.generate aborts on GeneratorExit itself; this also covers a close before the first output
                with anyio.CancelScope(shield=True):
                    await self._engine.abort(request.request_id)

    async def aclose(self) -> None:
        self._engine.shutdown()


def _finish_reason(reason: str | None) -> FinishReason:
    """vLLM says `stop` (EOS or a stop string), `length`, or `abort`."""
    if reason == "length":
        return "length"
    if reason == "abort":
        return "cancelled"
    return "stop"
