"""The inference benchmarks in one run: node overhead on the real engine, then the router on a simulated fleet.

1. `bench/inference_engine.py`: TTFT and tokens/s of the CPU model called in-process vs through a node
   (gRPC on 127.0.0.1), and their ratio; `--engine vllm --weights W` does the same on a GPU machine.
2. `bench/inference_routing.py`: prefix-affinity vs round-robin on a modelled fleet under a shared-prefix
   agent workload (cache-hit rate, modelled TTFT, load spread), through the real `inference_node/router.py`.

Run: python bench/inference.py [--engine llama.cpp|vllm] [--weights W]; each script takes more options alone.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", default="llama.cpp", choices=["llama.cpp", "vllm"])
    parser.add_argument("--weights", default=None)
    args = parser.parse_args()
    engine = [sys.executable, str(HERE / "inference_engine.py"), "--engine", args.engine]
    engine += ["--weights", args.weights] if args.weights else []
    for title, argv in (("node overhead", engine), ("routing", [sys.executable, str(HERE / "inference_routing.py")])):
        print(f"== {title}", flush=True)
        code = subprocess.run(argv, check=False).returncode
        if code != 0:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
