"""The committed gRPC code is what scripts/gen_proto.py generates from the .proto files beside it."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).parents[3]


def gen_proto() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_proto", ROOT / "scripts" / "gen_proto.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_grpc_code_is_up_to_date(tmp_path: Path) -> None:
    pytest.importorskip("grpc_tools", reason="grpcio-tools is not installed: cannot regenerate to compare")
    script = gen_proto()
    written: list[Path] = script.generate(tmp_path)
    stale = [
        name
        for name, fresh in zip(script.generated_names(), written, strict=True)
        if not (ROOT / name).is_file() or (ROOT / name).read_bytes() != fresh.read_bytes()
    ]
    assert stale == [], "stale generated files: run python scripts/gen_proto.py"
