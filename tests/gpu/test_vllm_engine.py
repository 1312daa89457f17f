"""The vLLM engine for real, on a GPU: streaming, cancellation, token counts, prefix caching.

Needs vllm (`pip install -e ".[vllm]"`), a CUDA device, and MESHGATE_TEST_VLLM_MODEL naming a model directory
or hub id vLLM can load offline; each missing piece skips with its reason.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import anyio
import pytest

pytestmark = [pytest.mark.gpu, pytest.mark.anyio]

pytest.importorskip("vllm", reason="vllm is not installed (pip install -e '.[vllm]')")
torch = pytest.importorskip("torch", reason="torch is not installed")
if not torch.cuda.is_available():
    pytest.skip("no CUDA device", allow_module_level=True)
WEIGHTS = os.environ.get("MESHGATE_TEST_VLLM_MODEL", "")
if not WEIGHTS:
    pytest.skip("MESHGATE_TEST_VLLM_MODEL is not set (a model dir or hub id vLLM can load)", allow_module_level=True)

from inference_node.engine import ChatMessage, GenerationChunk, GenerationRequest  # noqa: E402
from inference_node.vllm_engine import VllmConfig, VllmEngine  # noqa: E402

SYSTEM = "You are a planning agent. Tools: search_flights, book_flight, search_hotels, book_hotel. " * 8


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def engine() -> AsyncIterator[VllmEngine]:
    engine = await VllmEngine.open(VllmConfig(model="gpu-model", weights=WEIGHTS, gpu_memory_utilization=0.5))
    yield engine
    await engine.aclose()


async def run(engine: VllmEngine, request: GenerationRequest) -> list[GenerationChunk]:
    with anyio.fail_after(120):
        return [chunk async for chunk in engine.generate(request)]


async def test_streams_greedy_tokens_with_running_counts(engine: VllmEngine) -> None:
    chunks = await run(engine, GenerationRequest(request_id="s1", prompt="The capital of France is", max_tokens=16))
    assert len(chunks) > 1 and "".join(c.text for c in chunks).strip()
    counts = [c.completion_tokens for c in chunks]
    assert counts == sorted(counts) and counts[-1] == 16
    assert chunks[-1].finish_reason == "length" and chunks[-1].prompt_tokens > 0


async def test_closing_early_aborts_and_the_engine_serves_the_next_request(engine: VllmEngine) -> None:
    with anyio.fail_after(120):
        stream = engine.generate(GenerationRequest(request_id="c1", prompt="Once upon a time", max_tokens=2000))
        await anext(stream)
        await stream.aclose()
    chunks = await run(engine, GenerationRequest(request_id="c2", prompt="Hello", max_tokens=4))
    assert chunks[-1].finish_reason == "length"


async def test_a_shared_prefix_is_served_from_the_prefix_cache(engine: VllmEngine) -> None:
    def ask(question: str) -> GenerationRequest:
        return GenerationRequest(
            request_id=question, messages=(ChatMessage("system", SYSTEM), ChatMessage("user", question)), max_tokens=4
        )

    await run(engine, ask("Find a flight to Rome."))
    second = await run(engine, ask("Book a hotel in Rome."))
    assert second[-1].cached_prompt_tokens > 0
