"""Obligations: parsed strictly (unknown, mistyped or out-of-phase keys are errors) and applied purely."""

from __future__ import annotations

import json
from typing import Any

import pytest

from policies.obligations import (
    REDACTED,
    ObligationError,
    Obligations,
    cap_arguments,
    redact,
    redact_tool_result,
    result_size,
    withheld_result,
)


def test_every_obligation_parses_into_its_typed_field() -> None:
    raw = {
        "audit_arguments": False,
        "rate_class": "anonymous",
        "redact_arguments": ["body", "user.email"],
        "cap_arguments": {"limit": 20},
        "require_pinned": True,
    }

    parsed = Obligations.parse(raw, "mcp.tools/call")

    assert parsed == Obligations(
        audit_arguments=False,
        rate_class="anonymous",
        redact_arguments=("body", "user.email"),
        cap_arguments={"limit": 20},
        require_pinned=True,
    )


def test_absent_obligations_mean_nothing_to_do() -> None:
    parsed = Obligations.parse({})

    assert parsed == Obligations()
    assert (parsed.visible, parsed.audit_arguments, parsed.max_result_bytes) == (None, True, None)


@pytest.mark.parametrize(
    ("raw", "action"),
    [
        ({"frobnicate": 1}, None),
        ({"visible": ["a", 1]}, None),
        ({"rate_class": None}, None),
        ({"redact_arguments": "body"}, None),
        ({"redact_arguments": [""]}, None),
        ({"redact_result": ["a..b"]}, None),
        ({"cap_arguments": [20]}, None),
        ({"cap_arguments": {"limit": False}}, None),
        ({"require_pinned": 1}, None),
        ({"max_result_bytes": 1.5}, None),
        ({"max_result_bytes": -1}, None),
        ({"max_result_bytes": True}, None),
        ({"redact_result": ["body"]}, "mcp.tools/call"),
        ({"require_pinned": True}, "mcp.tools/result"),
        ({"cap_arguments": {"limit": 1}}, "mcp.prompts/get"),
    ],
)
def test_an_obligation_the_mesh_cannot_enforce_is_an_error(raw: dict[str, Any], action: str | None) -> None:
    with pytest.raises(ObligationError):
        Obligations.parse(raw, action)


def test_visible_and_audit_arguments_come_with_any_action() -> None:
    raw = {"visible": ["a"], "audit_arguments": True, "rate_class": "x"}

    for action in ("mcp.tools/list", "mcp.tools/result", "a2a.message/send"):
        assert Obligations.parse(raw, action).visible == ("a",)


def test_redact_replaces_nested_paths_and_leaves_the_input_alone() -> None:
    arguments = {"body": "secret", "user": {"email": "a@b.c", "name": "ann"}, "title": "t"}

    redacted = redact(arguments, ["body", "user.email", "missing.path"])

    assert redacted == {"body": REDACTED, "user": {"email": REDACTED, "name": "ann"}, "title": "t"}
    assert arguments["body"] == "secret" and arguments["user"] == {"email": "a@b.c", "name": "ann"}


def test_redact_walks_lists_by_index_and_wildcard() -> None:
    document = {"result": [{"body": "a", "id": 1}, {"body": "b", "id": 2}]}

    assert redact(document, ["result.*.body"]) == {"result": [{"body": REDACTED, "id": 1}, {"body": REDACTED, "id": 2}]}
    assert redact(document, ["result.1.body", "result.7.body"])["result"] == [
        {"body": "a", "id": 1},
        {"body": REDACTED, "id": 2},
    ]


def test_redact_can_replace_a_whole_subtree() -> None:
    assert redact({"user": {"email": "x"}}, ["user"]) == {"user": REDACTED}


def test_numbers_above_their_cap_are_lowered_and_others_kept() -> None:
    arguments = {"limit": 80, "offset": 5, "query": "q", "ratio": 2.5, "flag": True}

    capped = cap_arguments(arguments, {"limit": 20, "offset": 10, "query": 1, "ratio": 1.5, "flag": 0, "absent": 3})

    assert capped == {"limit": 20, "offset": 5, "query": "q", "ratio": 1.5, "flag": True}
    assert isinstance(capped["limit"], int)
    assert arguments["limit"] == 80


def test_a_tool_result_is_redacted_in_structured_content_and_in_json_text() -> None:
    note = {"id": 1, "title": "standup", "body": "ship it"}
    result: dict[str, Any] = {
        "content": [
            {"type": "text", "text": json.dumps(note)},
            {"type": "text", "text": "not json: body"},
            {"type": "image", "data": "AAAA", "mimeType": "image/png"},
        ],
        "structuredContent": note,
        "isError": False,
    }

    redacted = redact_tool_result(result, ["body"])

    assert redacted["structuredContent"] == {"id": 1, "title": "standup", "body": REDACTED}
    assert json.loads(redacted["content"][0]["text"]) == {"id": 1, "title": "standup", "body": REDACTED}
    assert redacted["content"][1:] == result["content"][1:]
    assert result["structuredContent"] == note


def test_result_size_counts_compact_utf8_json_of_what_is_returned() -> None:
    result = {"content": [{"type": "text", "text": "é"}], "isError": False, "_meta": {"x": "ignored"}}

    assert result_size(result) == len('{"content":[{"type":"text","text":"é"}],"isError":false}'.encode())


def test_a_withheld_result_is_a_tool_error_saying_why() -> None:
    withheld = withheld_result(5000, 1000)

    assert withheld["isError"] is True
    assert withheld["content"] == [
        {"type": "text", "text": "result withheld by policy: 5000 bytes exceeds max_result_bytes 1000"}
    ]
