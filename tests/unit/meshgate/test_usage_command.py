"""`meshgate usage` through the CLI entry point, on a temporary SQLite registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from meshgate.__main__ import main
from registry.models import UsageRecord
from registry.sqlite_store import SqliteStore


def record(time: str, tenant: str, subject: str, node: str, prompt: int, completion: int) -> UsageRecord:
    return UsageRecord(f"2025-03-01T12:00:0{time}.000000Z", subject, tenant, "smollm2", node, prompt, completion, "mcp")


@pytest.fixture
def registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("MESHGATE_REGISTRY_URL", raising=False)
    config = tmp_path / "meshgate.yaml"
    config.write_text(yaml.safe_dump({"registry": {"url": "sqlite:///registry.db"}}))
    store = SqliteStore(tmp_path / "registry.db")
    store.append_usage(
        [
            record("1", "acme", "alice", "cpu-1", 100, 10),
            record("2", "acme", "alice", "cpu-1", 50, 5),
            record("3", "acme", "bob", "cpu-2", 10, 1),
            record("4", "globex", "carol", "cpu-1", 1000, 100),
        ]
    )
    store.close()
    return config


def cli(config: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    code = main(["-c", str(config), "usage", *args])
    return code, capsys.readouterr().out.splitlines()


def test_usage_totals_per_tenant_subject_model_and_node_largest_first(
    registry: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines = cli(registry, capsys)
    assert code == 0
    assert [line.split() for line in lines] == [
        ["TENANT", "SUBJECT", "MODEL", "NODE", "CALLS", "PROMPT", "COMPLETION", "TOTAL"],
        ["globex", "carol", "smollm2", "cpu-1", "1", "1000", "100", "1100"],
        ["acme", "alice", "smollm2", "cpu-1", "2", "150", "15", "165"],
        ["acme", "bob", "smollm2", "cpu-2", "1", "10", "1", "11"],
    ]


def test_usage_groups_by_the_chosen_fields_and_filters(registry: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, lines = cli(registry, capsys, "--by", "node", "--tenant", "acme")
    assert [line.split() for line in lines[1:]] == [["cpu-1", "2", "150", "15", "165"], ["cpu-2", "1", "10", "1", "11"]]
    _, lines = cli(registry, capsys, "--by", "tenant", "--since", "2025-03-01T12:00:02Z")
    assert [line.split()[:2] for line in lines[1:]] == [["globex", "1"], ["acme", "2"]]
    _, lines = cli(registry, capsys, "--subject", "nobody")
    assert lines == ["no usage records match"]


def test_usage_prints_json_lines(registry: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, lines = cli(registry, capsys, "--by", "tenant,model", "--json")
    assert [json.loads(line) for line in lines] == [
        {"tenant": "globex", "model": "smollm2", "calls": 1, "prompt_tokens": 1000, "completion_tokens": 100},
        {"tenant": "acme", "model": "smollm2", "calls": 3, "prompt_tokens": 160, "completion_tokens": 16},
    ]


def test_usage_refuses_an_unknown_grouping(registry: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        cli(registry, capsys, "--by", "colour")
    assert caught.value.code == 2
