"""`LlamaCppEngine`: the embedded CPU engine, llama-cpp-python behind the `EngineClient` protocol.

llama.cpp is synchronous and a context is not thread-safe, so each generation runs in its own worker thread
on one context taken from a small pool (`parallel` contexts), and sends chunks back to the event loop over
a memory stream. The token loop is ours, on `Llama.generate`, rather than `create_completion(stream=True)`:
we need a cancel check between tokens, exact running token counts per chunk, and to know how much of the
prompt the context reused (llama-cpp-python keeps a context's evaluated prefix in its KV cache and evaluates
only the new suffix; that is the prefix cache, and a request picks the idle context sharing most of its prompt).
"""

from __future__ import annotations

import codecs
import logging
import math
import os
import threading
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import anyio
import anyio.from_thread
import anyio.lowlevel
import llama_cpp
from anyio.streams.memory import MemoryObjectSendStream
from llama_cpp.llama_chat_format import Jinja2ChatFormatter
from llama_cpp.llama_types import ChatCompletionRequestMessage

from inference_node.engine import EngineInfo, FinishReason, GenerationChunk, GenerationRequest
from inference_node.weights import DEFAULT_MODEL, resolve_weights
from meshgate.errors import EngineError, InvalidArguments

logger = logging.getLogger(__name__)

ENGINE_NAME = "llama.cpp"
CLOSE_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class LlamaCppConfig:
    model: str = DEFAULT_MODEL
    weights: Path | None = None
    """None: the built-in model's packaged GGUF (`weights.resolve_weights`)."""
    context_tokens: int = 2048
    parallel: int = 1
    """Contexts in the pool: generations that run at once; more wait for a free context."""
    threads: int | None = None
    """Threads per context; None: the CPUs shared among the contexts (llama.cpp's threads spin, so
    oversubscribing the cores slows every generation down)."""


class _Slot:
    """One llama.cpp context; owned by at most one worker thread at a time (the engine's semaphore)."""

    def __init__(self, index: int, llama: llama_cpp.Llama) -> None:
        self.index = index
        self.llama = llama

    def reusable_prefix(self, tokens: Sequence[int]) -> int:
        """Prompt tokens `Llama.generate` will keep from this context's KV cache (its own rule, restated)."""
        evaluated = self.llama.input_ids[: self.llama.n_tokens].tolist()
        common = 0
        for a, b in zip(evaluated, tokens, strict=False):
            if a != b:
                break
            common += 1
        # a fully cached prompt is re-evaluated from its last token, to refresh the logits
        return common - 1 if common == len(tokens) else common


class LlamaCppEngine:
    """A GGUF model on the CPU. Build with `await LlamaCppEngine.open(config)`; close with `aclose()`."""

    def __init__(self, slots: list[_Slot], info: EngineInfo, formatter: Jinja2ChatFormatter | None) -> None:
        self._slots = slots
        self._free = list(slots)
        self._semaphore = anyio.Semaphore(len(slots))
        self._info = info
        self._formatter = formatter
        self._cancels: set[threading.Event] = set()
        self._closed = False

    @classmethod
    async def open(cls, config: LlamaCppConfig) -> LlamaCppEngine:
        """Load the weights (in a worker thread: it reads ~100 MB).

        Raises:
            ConfigError: the weights cannot be found.
            EngineError: llama.cpp cannot load them.
        """
        return await anyio.to_thread.run_sync(cls.load, config)

    @classmethod
    def load(cls, config: LlamaCppConfig) -> LlamaCppEngine:
        """Synchronous `open`, for scripts and benchmarks."""
        weights = resolve_weights(config.model, config.weights)
        parallel = max(1, config.parallel)
        threads = config.threads or max(1, (os.cpu_count() or 1) // parallel)
        slots: list[_Slot] = []
        try:
            for index in range(parallel):
                llama = llama_cpp.Llama(
                    model_path=str(weights.path), n_ctx=config.context_tokens, n_threads=threads, verbose=False
                )
                slots.append(_Slot(index, llama))
        except (ValueError, RuntimeError) as exc:
            for slot in slots:
                slot.llama.close()
            raise EngineError(f"llama.cpp could not load the weights of {config.model!r}") from exc
        llama = slots[0].llama
        info = EngineInfo(
            model=config.model,
            engine=ENGINE_NAME,
            context_tokens=llama.n_ctx(),
            description=weights.description,
        )
        return cls(slots, info, _chat_formatter(llama))

    @property
    def info(self) -> EngineInfo:
        return self._info

    def tokenize_prompt(self, request: GenerationRequest) -> list[int]:
        """The prompt's tokens: raw text with the model's BOS rule, or messages rendered with its chat template.

        Raises:
            InvalidArguments: the model has no chat template and the request has messages.
        """
        llama = self._slots[0].llama  # the vocabulary is read-only: safe beside a generating thread
        if not request.messages:
            return llama.tokenize(request.prompt.encode("utf-8"), add_bos=True, special=False)
        if self._formatter is None:
            raise InvalidArguments(f"model {self._info.model!r} has no chat template; send a prompt")
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        rendered = self._formatter(messages=cast(list[ChatCompletionRequestMessage], messages))
        # the template writes its own special tokens (added_special), so no BOS is added on top
        return llama.tokenize(rendered.prompt.encode("utf-8"), add_bos=not rendered.added_special, special=True)

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[GenerationChunk, None]:
        """Stream the generation; closing the iterator early stops the worker thread at the next token.

        Raises:
            InvalidArguments: the prompt does not fit the context, or chat without a template.
            EngineError: llama.cpp failed; the message is safe to show.
        """
        if self._closed:
            raise EngineError("the engine is closed")
        tokens = self.tokenize_prompt(request)
        if len(tokens) >= self._info.context_tokens:
            raise InvalidArguments(
                f"the prompt is {len(tokens)} tokens; the model's context holds {self._info.context_tokens}"
            )
        await self._semaphore.acquire()
        slot = max(self._free, key=lambda s: s.reusable_prefix(tokens))
        self._free.remove(slot)
        send, receive = anyio.create_memory_object_stream[GenerationChunk | EngineError](math.inf)
        cancel = threading.Event()
        self._cancels.add(cancel)
        loop_token = anyio.lowlevel.current_token()

        def to_loop(func: Callable[[], None]) -> None:
            anyio.from_thread.run_sync(func, token=loop_token)

        worker = threading.Thread(
            target=self._run,
            args=(slot, tokens, request, cancel, send, to_loop),
            name=f"llama.cpp-{slot.index}-{request.request_id}",
            daemon=True,
        )
        try:
            worker.start()
        except RuntimeError:
            self._release(slot, cancel)
            raise
        try:
            async with receive:
                async for item in receive:
                    if isinstance(item, EngineError):
                        raise item
                    yield item
        finally:
            # the worker notices between tokens and frees the context itself (`_release`)
            cancel.set()

    def _release(self, slot: _Slot, cancel: threading.Event) -> None:
        self._cancels.discard(cancel)
        self._free.append(slot)
        self._semaphore.release()

    def _run(
        self,
        slot: _Slot,
        tokens: list[int],
        request: GenerationRequest,
        cancel: threading.Event,
        send: MemoryObjectSendStream[GenerationChunk | EngineError],
        to_loop: Callable[[Callable[[], None]], None],
    ) -> None:
        """Worker thread: the token loop on one context; every chunk goes to the loop as soon as it exists."""

        def emit(item: GenerationChunk | EngineError) -> None:
            try:
                to_loop(lambda: send.send_nowait(item))
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                cancel.set()  # the reader went away

        try:
            self._generate_tokens(slot, tokens, request, cancel, emit)
        except Exception:
            logger.exception("llama.cpp failed generating %s", request.request_id)
            slot.llama.reset()  # the context's state is unknown now: drop its cached prefix
            emit(EngineError("the model engine failed while generating"))
        finally:
            try:
                to_loop(send.close)
                to_loop(lambda: self._release(slot, cancel))
            except RuntimeError:  # the event loop is gone (process exit): nobody waits for the slot
                pass

    def _generate_tokens(
        self,
        slot: _Slot,
        tokens: list[int],
        request: GenerationRequest,
        cancel: threading.Event,
        emit: Callable[[GenerationChunk | EngineError], None],
    ) -> None:
        llama = slot.llama
        prompt_tokens = len(tokens)
        cached = max(0, slot.reusable_prefix(tokens))
        budget = min(request.max_tokens, self._info.context_tokens - prompt_tokens)
        # without a seed, a fresh random one: a seed set by an earlier request must not stick to this context
        llama.set_seed(request.seed if request.seed is not None else llama_cpp.LLAMA_DEFAULT_SEED)
        text = _StopText(request.stop)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        completion = 0
        finish: FinishReason = "length"

        def chunk(piece: str, finish_reason: FinishReason | None = None) -> GenerationChunk:
            return GenerationChunk(
                text=piece,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion,
                finish_reason=finish_reason,
                cached_prompt_tokens=cached,
            )

        generator = llama.generate(tokens, temp=request.temperature, top_p=request.top_p, reset=True)
        try:
            for token in generator:
                if cancel.is_set():
                    finish = "cancelled"
                    break
                if llama_cpp.llama_vocab_is_eog(llama._model.vocab, token):  # pyright: ignore[reportPrivateUsage]
                    finish = "stop"
                    break
                completion += 1
                piece, stopped = text.feed(decoder.decode(llama.detokenize([token])))
                if stopped:
                    emit(chunk(piece, "stop"))
                    return
                if piece:
                    emit(chunk(piece))
                if completion >= budget:
                    break
        finally:
            generator.close()
        emit(chunk(text.flush(decoder.decode(b"", final=True)), finish))

    async def aclose(self) -> None:
        """Cancel running generations, wait for their threads to free the contexts, then free llama.cpp."""
        if self._closed:
            return
        self._closed = True
        for cancel in list(self._cancels):
            cancel.set()
        with anyio.move_on_after(CLOSE_TIMEOUT_S) as scope:
            for _ in self._slots:
                await self._semaphore.acquire()
        if scope.cancelled_caught:
            logger.warning("llama.cpp generations did not stop in %ss; leaving their contexts", CLOSE_TIMEOUT_S)
            return
        for slot in self._slots:
            slot.llama.close()


class _StopText:
    """Holds back text that may be the start of a stop string, so a stop string is never streamed out."""

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = [s for s in stops if s]
        self._pending = ""

    def feed(self, new: str) -> tuple[str, bool]:
        """The text safe to send now, and whether a stop string was reached (the text before it is returned)."""
        self._pending += new
        if not self._stops:
            out, self._pending = self._pending, ""
            return out, False
        hits = [i for i in (self._pending.find(s) for s in self._stops) if i >= 0]
        if hits:
            out, self._pending = self._pending[: min(hits)], ""
            return out, True
        hold = max((_overlap(self._pending, s) for s in self._stops), default=0)
        cut = len(self._pending) - hold
        out, self._pending = self._pending[:cut], self._pending[cut:]
        return out, False

    def flush(self, tail: str) -> str:
        out, stopped = self.feed(tail)
        if stopped:
            return out
        out, self._pending = out + self._pending, ""
        return out


def _overlap(text: str, stop: str) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of `stop`."""
    for n in range(min(len(text), len(stop) - 1), 0, -1):
        if text.endswith(stop[:n]):
            return n
    return 0


def _chat_formatter(llama: llama_cpp.Llama) -> Jinja2ChatFormatter | None:
    """The GGUF's own chat template (`tokenizer.chat_template`), as llama-cpp-python itself renders it."""
    metadata: dict[str, Any] = llama.metadata
    template = metadata.get("tokenizer.chat_template")
    if not isinstance(template, str):
        return None
    model = llama._model  # pyright: ignore[reportPrivateUsage]
    eos, bos = llama.token_eos(), llama.token_bos()
    return Jinja2ChatFormatter(
        template=template,
        eos_token=model.token_get_text(eos) if eos != -1 else "",
        bos_token=model.token_get_text(bos) if bos != -1 else "",
        add_generation_prompt=True,
    )
