"""Core modules stay protocol-free: they import no SDK, web framework or telemetry SDK (STYLE §2)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
CORE = [
    "mcp_gateway/catalog.py",
    "a2a_broker/delegation.py",
    "policies/input.py",
    "policies/decision.py",
    "policies/engine.py",
    "registry/models.py",
    "registry/store.py",
    "meshgate/principal.py",
    "meshgate/errors.py",
    "inference_node/engine.py",
    "inference_node/router.py",
]
FORBIDDEN = (
    "mcp",
    "mcp_types",
    "starlette",
    "httpx",
    "httpx2",
    "uvicorn",
    "a2a",
    "vllm",
    "grpc",
    "llama_cpp",
    "opentelemetry.sdk",
)


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("module", CORE)
def test_core_module_imports_no_protocol_sdk(module: str) -> None:
    bad = sorted(m for m in imported_modules(ROOT / module) if m.split(".")[0] in FORBIDDEN or m in FORBIDDEN)
    assert bad == []


def test_only_the_cli_reads_the_environment() -> None:
    offenders: list[str] = []
    for path in ROOT.glob("*/**/*.py"):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith(("tests/", ".venv/", "examples/", "bench/", "scripts/")) or rel == "meshgate/__main__.py":
            continue
        text = path.read_text()
        if "os.environ" in text or "os.getenv" in text:
            offenders.append(rel)
    assert offenders == []
