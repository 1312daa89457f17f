"""The embedded CPU engine with the real SmolLM2 weights: real tokens, counts, stops, cancellation, prefix reuse."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest

from inference_node.cpu_engine import LlamaCppConfig, LlamaCppEngine
from inference_node.engine import ChatMessage, GenerationChunk, GenerationRequest
from meshgate.errors import InvalidArguments

pytestmark = pytest.mark.anyio

PROMPT = "The three primary colors are"
SYSTEM = (
    "You are the planning agent of a travel company. You can call these tools: search_flights(origin, "
    "destination, date), book_flight(flight_id, passenger), search_hotels(city, checkin, checkout), "
    "book_hotel(hotel_id, guest), convert_currency(amount, from, to). Answer briefly and name the tool you use."
)


@pytest.fixture
async def engine() -> AsyncIterator[LlamaCppEngine]:
    engine = await LlamaCppEngine.open(LlamaCppConfig(parallel=1))
    yield engine
    await engine.aclose()


async def run(engine: LlamaCppEngine, request: GenerationRequest) -> list[GenerationChunk]:
    with anyio.fail_after(60):
        return [chunk async for chunk in engine.generate(request)]


def text(chunks: list[GenerationChunk]) -> str:
    return "".join(c.text for c in chunks)


async def test_greedy_decoding_generates_the_same_real_tokens_every_time(engine: LlamaCppEngine) -> None:
    request = GenerationRequest(request_id="g", prompt=PROMPT, max_tokens=16)
    first, second = await run(engine, request), await run(engine, request)
    assert text(first).strip() != ""
    assert text(first) == text(second)
    assert [(c.completion_tokens, c.finish_reason) for c in first] == [
        (c.completion_tokens, c.finish_reason) for c in second
    ]


async def test_running_counts_match_the_tokenizer_and_max_tokens_ends_with_length(engine: LlamaCppEngine) -> None:
    chunks = await run(engine, GenerationRequest(request_id="c", prompt=PROMPT, max_tokens=12))
    prompt_tokens = len(engine.tokenize_prompt(GenerationRequest(request_id="t", prompt=PROMPT)))
    assert {c.prompt_tokens for c in chunks} == {prompt_tokens}
    counts = [c.completion_tokens for c in chunks]
    assert counts == sorted(counts) and counts[-1] == 12
    assert [c.finish_reason for c in chunks[:-1]] == [None] * (len(chunks) - 1)
    assert chunks[-1].finish_reason == "length"


async def test_chat_messages_are_rendered_with_the_models_chat_template(engine: LlamaCppEngine) -> None:
    request = GenerationRequest(request_id="m", messages=(ChatMessage("user", "What is 2+2?"),), max_tokens=24)
    chunks = await run(engine, request)
    rendered = engine.tokenize_prompt(request)
    raw = engine.tokenize_prompt(GenerationRequest(request_id="r", prompt="What is 2+2?"))
    # SmolLM2's template adds a default system turn and the <|im_start|> markers around the user turn
    assert chunks[-1].prompt_tokens == len(rendered) > len(raw) + 10
    assert "4" in text(chunks)
    assert chunks[-1].finish_reason == "stop"


async def test_a_stop_string_ends_the_generation_before_it(engine: LlamaCppEngine) -> None:
    full = text(await run(engine, GenerationRequest(request_id="f", prompt=PROMPT, max_tokens=16)))
    stop = full.split()[1]
    chunks = await run(engine, GenerationRequest(request_id="s", prompt=PROMPT, max_tokens=16, stop=(stop,)))
    assert text(chunks) == full[: full.index(stop)]
    assert chunks[-1].finish_reason == "stop"


async def test_closing_the_stream_early_cancels_and_the_engine_serves_the_next_request(engine: LlamaCppEngine) -> None:
    with anyio.fail_after(60):
        stream = engine.generate(GenerationRequest(request_id="long", prompt="Once upon a time", max_tokens=2000))
        received = [await anext(stream), await anext(stream)]
        await stream.aclose()
    assert received[-1].finish_reason is None
    # one context (parallel=1): the next request runs only once the cancelled one has freed it
    chunks = await run(engine, GenerationRequest(request_id="next", prompt=PROMPT, max_tokens=4))
    assert chunks[-1].finish_reason == "length"


async def test_a_request_sharing_a_long_prefix_reports_cached_prompt_tokens(engine: LlamaCppEngine) -> None:
    def ask(question: str) -> GenerationRequest:
        return GenerationRequest(
            request_id=question, messages=(ChatMessage("system", SYSTEM), ChatMessage("user", question)), max_tokens=4
        )

    first = await run(engine, ask("Find a flight from Paris to Rome."))
    second = await run(engine, ask("Book a hotel in Rome."))
    system_tokens = len(engine.tokenize_prompt(GenerationRequest(request_id="p", prompt=SYSTEM)))
    assert first[-1].cached_prompt_tokens == 0
    assert system_tokens <= second[-1].cached_prompt_tokens < second[-1].prompt_tokens


async def test_a_prompt_longer_than_the_context_is_invalid(engine: LlamaCppEngine) -> None:
    with pytest.raises(InvalidArguments) as caught:
        await run(engine, GenerationRequest(request_id="big", prompt="word " * 3000, max_tokens=4))
    assert caught.value.code == "invalid_arguments"
