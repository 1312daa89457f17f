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
    file_parts,
    message_size,
    redact,
    redact_message_parts,
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
        ({"redact_parts": "card"}, None),
        ({"deny_file_parts": "yes"}, None),
        ({"max_message_bytes": -1}, None),
        ({"max_message_bytes": 1.0}, None),
        ({"deny_file_parts": True}, "a2a.tasks/get"),
        ({"max_message_bytes": 10}, "mcp.tools/call"),
        ({"redact_parts": ["card"]}, "mcp.tools/result"),
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


def test_message_obligations_parse_on_message_actions() -> None:
    raw = {"redact_parts": ["card.number"], "deny_file_parts": True, "max_message_bytes": 65536}

    for action in ("a2a.message/send", "a2a.message/stream"):
        assert Obligations.parse(raw, action) == Obligations(
            redact_parts=("card.number",), deny_file_parts=True, max_message_bytes=65536
        )


def test_redact_message_parts_reaches_data_parts_and_json_text_only() -> None:
    parts: list[Any] = [
        {"data": {"card": {"number": "4111", "holder": "ann"}}, "metadata": {"card": "kept"}},
        {"data": [{"card": {"number": "5500"}}]},
        {"text": '{"card":{"number":"4111"}}'},
        {"text": "my card is 4111"},
        {"url": "https://files.example/card.pdf", "filename": "card.pdf"},
    ]

    redacted = redact_message_parts(parts, ["card.number", "*.card.number"])

    assert redacted == [
        {"data": {"card": {"number": REDACTED, "holder": "ann"}}, "metadata": {"card": "kept"}},
        {"data": [{"card": {"number": REDACTED}}]},
        {"text": '{"card":{"number":"[REDACTED]"}}'},
        {"text": "my card is 4111"},
        {"url": "https://files.example/card.pdf", "filename": "card.pdf"},
    ]
    assert parts[0]["data"]["card"]["number"] == "4111"  # the input is untouched


def test_file_parts_are_those_with_raw_bytes_or_a_url() -> None:
    parts: list[Any] = [{"text": "hi"}, {"raw": "aGk=", "filename": "a.txt"}, {"data": {}}, {"url": "https://x/y"}]

    assert file_parts(parts) == [1, 3]


def test_message_size_is_compact_utf8_json_of_the_parts() -> None:
    parts = [{"text": "é"}]

    assert message_size(parts) == len('[{"text":"é"}]'.encode())
