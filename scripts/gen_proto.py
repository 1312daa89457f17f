#!/usr/bin/env python3
"""Regenerate the inference node's gRPC code (`inference_node/proto/*_pb2.py`, `.pyi`, `_pb2_grpc.py`).

The .proto files are compiled with grpcio-tools' bundled protoc, rooted at the repository so the generated
modules import each other as `inference_node.proto.…`. The generated files are committed;
`tests/unit/inference_node/test_proto_generated.py` fails when they differ from what this script writes.

    python scripts/gen_proto.py [--out DIR]     # default: the repository itself
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROTO_DIR = "inference_node/proto"
PROTOS = ("grpc_predict_v2.proto", "inference_stream.proto", "node_status.proto")


def generated_names() -> list[str]:
    """Paths, relative to the output root, of every file `generate` writes."""
    names: list[str] = []
    for proto in PROTOS:
        stem = f"{PROTO_DIR}/{proto.removesuffix('.proto')}"
        names += [f"{stem}_pb2.py", f"{stem}_pb2.pyi", f"{stem}_pb2_grpc.py"]
    return names


def generate(out: Path = ROOT) -> list[Path]:
    """Compile the protos into `out` (mirroring the repository layout); the files written.

    Raises:
        RuntimeError: grpcio-tools is not installed or protoc failed.
    """
    try:
        from grpc_tools import protoc  # pyright: ignore[reportMissingTypeStubs]
    except ImportError as exc:
        raise RuntimeError("grpcio-tools is not installed: pip install grpcio-tools") from exc
    (out / PROTO_DIR).mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"-I{ROOT}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *(f"{ROOT}/{PROTO_DIR}/{proto}" for proto in PROTOS),
    ]
    status = int(protoc.main(args))  # pyright: ignore[reportUnknownMemberType, reportUnknownArgumentType]
    if status != 0:
        raise RuntimeError(f"protoc failed with status {status}")
    return [out / name for name in generated_names()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT, help="output root (default: the repository)")
    args = parser.parse_args()
    for path in generate(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
