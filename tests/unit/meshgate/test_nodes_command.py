"""`meshgate nodes list|remove` through the CLI entry point, on a temporary SQLite registry."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
import yaml

from meshgate.__main__ import main
from registry.models import InferenceNode
from registry.sqlite_store import SqliteStore


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("MESHGATE_REGISTRY_URL", raising=False)
    config = tmp_path / "meshgate.yaml"
    config.write_text(yaml.safe_dump({"registry": {"url": "sqlite:///registry.db"}}))
    store = SqliteStore(tmp_path / "registry.db")
    store.upsert_node(InferenceNode("cpu-1", "smollm2", "llama.cpp", "127.0.0.1:8950", capacity=2))
    store.report_load("cpu-1", 1, 0)
    store.upsert_node(InferenceNode("gpu-1", "qwen", "vllm", "10.0.0.5:8950", capacity=64))
    store.close()
    # gpu-1 last reported in 2025: long stale.
    with closing(sqlite3.connect(tmp_path / "registry.db")) as conn, conn:
        conn.execute("UPDATE inference_nodes SET heartbeat_at = '2025-03-01T12:00:00.000000Z' WHERE name = 'gpu-1'")
    return config


def cli(config: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(["-c", str(config), "nodes", *args])
    return code, capsys.readouterr().out


def test_nodes_list_shows_load_heartbeat_and_health(registry: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = cli(registry, capsys, "list")
    assert code == 0
    header, cpu, gpu = out.splitlines()
    assert header.split() == "NAME MODEL ENGINE ADDRESS CAPACITY IN-FLIGHT QUEUED LOAD HEARTBEAT HEALTH".split()
    assert cpu.split()[:8] == ["cpu-1", "smollm2", "llama.cpp", "127.0.0.1:8950", "2", "1", "0", "50%"]
    assert cpu.split()[-1] == "healthy"
    assert gpu.split()[:2] == ["gpu-1", "qwen"] and "stale: last heartbeat" in gpu


def test_nodes_list_filters_by_model_and_prints_json(registry: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, out = cli(registry, capsys, "list", "--model", "qwen", "--json")
    (line,) = out.splitlines()
    node = json.loads(line)
    assert (node["name"], node["capacity"], node["healthy"]) == ("gpu-1", 64, False)


def test_a_removed_node_is_no_longer_listed(registry: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(registry, capsys, "remove", "gpu-1") == (0, "removed node gpu-1\n")
    _, out = cli(registry, capsys, "list", "--model", "qwen")
    assert out == "no inference nodes registered\n"
    code = main(["-c", str(registry), "nodes", "remove", "gpu-1"])
    assert code == 2
