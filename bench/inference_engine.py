"""Inference node overhead: the engine called in-process vs through a node (NodeClient → gRPC → node process).

The same model, chat prompt and greedy decoding both ways, one generation at a time: `direct` is the engine in
this process (`LlamaCppEngine`, or `VllmEngine` with `--engine vllm`); `node` is `python -m meshgate node`
started as a user would, on 127.0.0.1, driven by `NodeClient.generate` (server streaming). Prints TTFT
p50/p99 (time to the first chunk with text) and decode tokens/s p50 per path, and node/direct ratios
against the issue's target (<= 2 % tokens/s overhead, meant for vLLM on a GPU).
Run: python bench/inference_engine.py [--runs 20] [--max-tokens 64] [--engine llama.cpp|vllm] [--weights W] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import anyio
from harness import stop

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from inference_node.client import NodeClient  # noqa: E402
from inference_node.engine import ChatMessage, EngineClient, GenerationChunk, GenerationRequest  # noqa: E402

PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."
START_TIMEOUT_S = 600.0
TARGET_OVERHEAD = 0.02


@dataclass
class Result:
    path: str
    runs: int
    ttft_p50_ms: float
    ttft_p99_ms: float
    tokens_per_s_p50: float
    completion_tokens: int


Generate = Callable[[GenerationRequest], AsyncIterator[GenerationChunk]]


async def measure(path: str, generate: Generate, runs: int, warmup: int, max_tokens: int) -> Result:
    ttfts: list[float] = []
    rates: list[float] = []
    tokens = 0
    for i in range(warmup + runs):
        request = GenerationRequest(
            request_id=f"{path}-{i}", messages=(ChatMessage("user", PROMPT),), max_tokens=max_tokens
        )
        start = time.perf_counter()
        first = 0.0
        last: GenerationChunk | None = None
        async for chunk in generate(request):
            if not first and chunk.text:
                first = time.perf_counter()
            last = chunk
        end = time.perf_counter()
        assert last is not None and first
        if i < warmup:
            continue
        tokens = last.completion_tokens
        ttfts.append((first - start) * 1000)
        # decode rate after the first token, so TTFT (prefill) is not counted twice
        rates.append((last.completion_tokens - 1) / (end - first))
    return Result(
        path=path,
        runs=runs,
        ttft_p50_ms=round(statistics.median(ttfts), 2),
        ttft_p99_ms=round(_p99(ttfts), 2),
        tokens_per_s_p50=round(statistics.median(rates), 1),
        completion_tokens=tokens,
    )


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


async def open_engine(engine: str, weights: str | None) -> EngineClient:
    if engine == "vllm":
        from inference_node.vllm_engine import VllmConfig, VllmEngine

        assert weights, "--engine vllm needs --weights"
        return await VllmEngine.open(VllmConfig(model="bench", weights=weights))
    from inference_node.cpu_engine import LlamaCppConfig, LlamaCppEngine

    return await LlamaCppEngine.open(LlamaCppConfig(parallel=1, weights=Path(weights) if weights else None))


def start_node(workdir: Path, engine: str, weights: str | None) -> tuple[subprocess.Popen[str], str]:
    """`meshgate node` on a free port, capacity 1 (the direct path runs one context too); its address."""
    config = workdir / "meshgate.yaml"
    config.write_text(json.dumps({"registry": {"url": "sqlite:///registry.db"}}))
    argv = [sys.executable, "-m", "meshgate", "-c", str(config), "node", "--name", "bench", "--port", "0"]
    argv += ["--capacity", "1", "--engine", engine, "--model", "smollm2" if engine == "llama.cpp" else "bench"]
    if weights:
        argv += ["--weights", weights]
    process = subprocess.Popen(argv, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT_S
    line = process.stdout.readline()
    if not line.startswith("meshgate node ") or time.monotonic() > deadline:
        stop(process)  # pyright: ignore[reportArgumentType]
        err = process.stderr.read() if process.stderr else ""
        raise RuntimeError(f"the node did not start: {line!r} {err[-2000:]}")
    return process, line.split()[-1]


async def run(
    runs: int = 20, warmup: int = 3, max_tokens: int = 64, engine: str = "llama.cpp", weights: str | None = None
) -> dict[str, object]:
    """Measure both paths in one run (direct first, then its engine is closed, then the node); the report."""
    direct_engine = await open_engine(engine, weights)
    try:
        direct = await measure("direct", direct_engine.generate, runs, warmup, max_tokens)
    finally:
        await direct_engine.aclose()
    with tempfile.TemporaryDirectory() as tmp:
        process, address = start_node(Path(tmp), engine, weights)
        client = NodeClient(address, "smollm2" if engine == "llama.cpp" else "bench")
        try:
            node = await measure("node", client.generate, runs, warmup, max_tokens)
        finally:
            await client.aclose()
            stop(process)  # pyright: ignore[reportArgumentType]
    overhead = 1 - node.tokens_per_s_p50 / direct.tokens_per_s_p50
    return {
        "engine": engine,
        "results": [asdict(direct), asdict(node)],
        "ttft_p50_ratio": round(node.ttft_p50_ms / direct.ttft_p50_ms, 3),
        "tokens_per_s_overhead": round(overhead, 4),
        "target_overhead": TARGET_OVERHEAD,
        "within_target": overhead <= TARGET_OVERHEAD,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--engine", default="llama.cpp", choices=["llama.cpp", "vllm"])
    parser.add_argument("--weights", default=None, help="GGUF (llama.cpp) or model dir / hub id (vllm)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report = anyio.run(run, args.runs, args.warmup, args.max_tokens, args.engine, args.weights)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"engine {report['engine']}: {args.runs} generations of {args.max_tokens} tokens each path, greedy")
    print(f"{'path':<8}{'TTFT p50 ms':>13}{'TTFT p99 ms':>13}{'tokens/s p50':>14}")
    for row in report["results"]:  # type: ignore[union-attr]
        r = Result(**row)  # type: ignore[arg-type]
        print(f"{r.path:<8}{r.ttft_p50_ms:>13.2f}{r.ttft_p99_ms:>13.2f}{r.tokens_per_s_p50:>14.1f}")
    print(
        f"node/direct TTFT p50 ratio {report['ttft_p50_ratio']}; tokens/s overhead "
        f"{float(str(report['tokens_per_s_overhead'])) * 100:.2f}% (target <= {TARGET_OVERHEAD * 100:.0f}%: "
        f"{'met' if report['within_target'] else 'not met'})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
