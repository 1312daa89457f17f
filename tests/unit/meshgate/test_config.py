from __future__ import annotations

import sys
from pathlib import Path

import pytest

from meshgate.config import load_config, resolve_argv
from meshgate.errors import ConfigError


def write(tmp_path: Path, text: str, name: str = "meshgate.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_no_file_gives_the_embedded_defaults() -> None:
    config = load_config(None, {})
    assert (config.gateway.host, config.gateway.port, config.gateway.path) == ("127.0.0.1", 8900, "/mcp")
    assert config.registry.url.startswith("sqlite:///")
    assert config.upstreams == ()


def test_the_shipped_config_is_valid() -> None:
    config = load_config(Path(__file__).parents[3] / "meshgate.yaml", {})
    assert [u.name for u in config.upstreams] == ["notes", "toolbox"]


def test_an_unknown_key_is_named_in_the_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "gateway:\n  prot: 9000\n"), {})
    assert "gateway.prot" in info.value.detail
    assert info.value.code == "config_invalid"


def test_a_bad_upstream_field_is_named_with_its_index(tmp_path: Path) -> None:
    text = "upstreams:\n  - {name: ok, transport: stdio, command: [x]}\n  - {name: bad, transport: ftp}\n"
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), {})
    assert "upstreams[1].transport" in info.value.detail


def test_an_http_upstream_without_url_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "upstreams:\n  - {name: web, transport: http}\n"), {})
    assert "upstreams[0]" in info.value.detail and "url" in info.value.detail


def test_duplicate_upstream_names_are_rejected(tmp_path: Path) -> None:
    text = "upstreams:\n  - {name: a, transport: stdio, command: [x]}\n  - {name: a, transport: stdio, command: [y]}\n"
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), {})
    assert "duplicate upstream names: a" in info.value.detail


def test_invalid_yaml_is_reported_as_such(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "gateway: [unclosed\n"), {})
    assert "not valid YAML" in info.value.detail


def test_toml_files_are_read_too(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "[gateway]\nport = 9100\n", "meshgate.toml"), {})
    assert config.gateway.port == 9100


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, "gateway:\n  port: 9000\n"), {"MESHGATE_GATEWAY_PORT": "9001"})
    assert config.gateway.port == 9001


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "absent.yaml", {})
    assert "cannot read config file" in info.value.detail


def test_python_means_this_interpreter_and_scripts_resolve_against_the_config_dir(tmp_path: Path) -> None:
    argv = resolve_argv(("python", "examples/x.py", "--db", "a.db"), str(tmp_path))
    assert argv == [sys.executable, str(tmp_path / "examples/x.py"), "--db", "a.db"]


def test_model_fronts_carry_the_routers_settings_from_the_config(tmp_path: Path) -> None:
    from inference_node.launcher import with_model_fronts

    path = write(
        tmp_path,
        "broker: {enabled: true}\n"
        "inference:\n"
        "  enabled: true\n"
        "  routing: round-robin\n"
        "  balance_threshold: 0.25\n"
        "  stale_after_s: 5\n"
        "  chunk_timeout_s: 12\n"
        "  models: [{id: smollm2, agent_port: 8961}]\n",
    )
    config = with_model_fronts(load_config(path, {}))
    [tool] = config.upstreams
    [agent] = config.agents
    for argv in (tool.command, agent.launch):
        settings = dict(zip(argv[3::2], argv[4::2], strict=False))
        assert settings["--routing"] == "round-robin"
        assert (settings["--balance-threshold"], settings["--stale-after-s"], settings["--chunk-timeout-s"]) == (
            "0.25",
            "5.0",
            "12.0",
        )
    assert tool.command[:3] == ("python", "-m", "inference_node.mcp_server")
    assert agent.launch[:3] == ("python", "-m", "inference_node.a2a_agent")
