"""The input document v1: its JSON Schema, the shipped examples, and the TypedDicts agree."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast, get_args

import pytest
from jsonschema import Draft202012Validator, validators

from policies import DEFAULT_BUNDLE
from policies.input import Action

SCHEMA = json.loads((DEFAULT_BUNDLE / "schema" / "input.v1.json").read_text())
EXAMPLES = sorted((DEFAULT_BUNDLE / "examples").glob("*.json"))


def schema_errors(doc: Any) -> list[str]:
    validator = validators.validator_for(SCHEMA, default=Draft202012Validator)(SCHEMA)
    errors = sorted(validator.iter_errors(cast(dict[str, Any], doc)), key=lambda e: list(e.absolute_path))
    return [f"{list(e.absolute_path)}: {e.message}" for e in errors]


def test_the_schema_is_valid_json_schema_2020_12() -> None:
    Draft202012Validator.check_schema(SCHEMA)


def test_the_schema_and_the_typed_dict_name_the_same_actions() -> None:
    assert SCHEMA["properties"]["action"]["enum"] == list(get_args(Action))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_example_is_valid_against_the_schema(path: Path) -> None:
    assert schema_errors(json.loads(path.read_text())) == []


def test_every_mcp_action_has_an_example() -> None:
    actions = {json.loads(p.read_text())["action"] for p in EXAMPLES}

    assert {a for a in get_args(Action) if a.startswith("mcp.")} <= actions


@pytest.mark.parametrize(
    "change",
    [
        {"version": 2},
        {"action": "mcp.sampling/createMessage"},
        {"delegation": None},
        {"result": {"content": [], "isError": False, "size_bytes": 1}},
        {"unexpected": True},
    ],
    ids=["version", "action", "delegation", "result-outside-its-phase", "unknown-key"],
)
def test_the_schema_rejects_what_the_mesh_never_sends(change: dict[str, Any]) -> None:
    doc = json.loads((DEFAULT_BUNDLE / "examples" / "mcp.tools-call.json").read_text()) | change

    assert schema_errors({k: v for k, v in doc.items() if v is not None}) != []
