"""Obligations: what a decision tells the mesh to do besides allowing, parsed and applied in one place.

`Obligations.parse` checks the decision document's `obligations` object (the decision point calls it,
so an unknown or wrongly typed key makes the decision malformed: a fail-closed deny, never ignored).
The `redact_*`, `cap_*`, `withheld_*` and message functions are pure: JSON in, new JSON out, inputs
untouched. Adapters call them; which phase applies which obligation is `PHASES` below.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

REDACTED = "[REDACTED]"
WILDCARD = "*"

MESSAGE_ACTIONS = frozenset({"a2a.message/send", "a2a.message/stream"})

_ANY = None
"""In `PHASES`: the obligation may come with a decision on any action."""

PHASES: dict[str, frozenset[str] | None] = {
    "visible": _ANY,
    "audit_arguments": _ANY,
    "rate_class": _ANY,
    "redact_arguments": frozenset({"mcp.tools/call", "mcp.prompts/get"}),
    "cap_arguments": frozenset({"mcp.tools/call"}),
    "require_pinned": frozenset({"mcp.tools/call"}),
    "redact_result": frozenset({"mcp.tools/result"}),
    "max_result_bytes": frozenset({"mcp.tools/result"}),
    "redact_parts": MESSAGE_ACTIONS,
    "deny_file_parts": MESSAGE_ACTIONS,
    "max_message_bytes": MESSAGE_ACTIONS,
    "max_tokens": frozenset({"mcp.tools/call"}) | MESSAGE_ACTIONS,
}
"""Every obligation the mesh knows, and the actions whose decisions may carry it."""


class ObligationError(ValueError):
    """The obligations object is not one the mesh can enforce; the message names the key."""


@dataclass(frozen=True, slots=True)
class Obligations:
    """The typed obligations of one decision (policies/README.md has the table)."""

    visible: tuple[str, ...] | None = None
    """List actions: the ids the subject may see; None when the policy did not say."""
    audit_arguments: bool = True
    rate_class: str = ""
    """Recorded with the decision and on its span; rates are not enforced yet (policies/README.md says so)."""
    redact_arguments: tuple[str, ...] = ()
    cap_arguments: Mapping[str, int | float] = field(default_factory=dict[str, int | float])
    require_pinned: bool = False
    redact_result: tuple[str, ...] = ()
    max_result_bytes: int | None = None
    redact_parts: tuple[str, ...] = ()
    deny_file_parts: bool = False
    max_message_bytes: int | None = None
    max_tokens: int | None = None
    """Model calls: the most tokens a generation may produce (the tool's `max_tokens` argument, or the
    model agent's budget); a larger or absent request is lowered to it."""

    @classmethod
    def parse(cls, raw: Mapping[str, Any], action: str | None = None) -> Obligations:
        """Check and type `raw`; with `action`, also that each key may come with a decision on it.

        Raises:
            ObligationError: an unknown key, a wrongly typed value, or a key out of its phase.
        """
        unknown = sorted(set(raw) - set(PHASES))
        if unknown:
            raise ObligationError(f"unknown obligation {', '.join(unknown)}")
        if action is not None:
            for key in sorted(raw):
                phases = PHASES[key]
                if phases is not None and action not in phases:
                    raise ObligationError(f"obligation {key} applies to {', '.join(sorted(phases))}, not {action}")
        visible = raw.get("visible")
        if visible is not None and not _is_str_list(visible):
            raise ObligationError("obligations.visible must be a list of strings")
        audit_arguments = raw.get("audit_arguments", True)
        if not isinstance(audit_arguments, bool):
            raise ObligationError("obligations.audit_arguments must be a boolean")
        rate_class = raw.get("rate_class", "")
        if not isinstance(rate_class, str):
            raise ObligationError("obligations.rate_class must be a string")
        require_pinned = raw.get("require_pinned", False)
        if not isinstance(require_pinned, bool):
            raise ObligationError("obligations.require_pinned must be a boolean")
        max_result_bytes = raw.get("max_result_bytes")
        if max_result_bytes is not None and (not _is_int(max_result_bytes) or max_result_bytes < 0):
            raise ObligationError("obligations.max_result_bytes must be a non-negative integer")
        deny_file_parts = raw.get("deny_file_parts", False)
        if not isinstance(deny_file_parts, bool):
            raise ObligationError("obligations.deny_file_parts must be a boolean")
        max_message_bytes = raw.get("max_message_bytes")
        if max_message_bytes is not None and (not _is_int(max_message_bytes) or max_message_bytes < 0):
            raise ObligationError("obligations.max_message_bytes must be a non-negative integer")
        max_tokens = raw.get("max_tokens")
        if max_tokens is not None and (not _is_int(max_tokens) or max_tokens < 1):
            raise ObligationError("obligations.max_tokens must be a positive integer")
        caps = raw.get("cap_arguments", {})
        if not isinstance(caps, dict) or not all(
            isinstance(k, str) and _is_number(v) for k, v in cast(dict[Any, Any], caps).items()
        ):
            raise ObligationError("obligations.cap_arguments must be an object of numbers")
        return cls(
            visible=tuple(cast(list[str], visible)) if visible is not None else None,
            audit_arguments=audit_arguments,
            rate_class=rate_class,
            redact_arguments=_paths(raw, "redact_arguments"),
            cap_arguments=dict(cast(dict[str, int | float], caps)),
            require_pinned=require_pinned,
            redact_result=_paths(raw, "redact_result"),
            max_result_bytes=cast(int | None, max_result_bytes),
            redact_parts=_paths(raw, "redact_parts"),
            deny_file_parts=deny_file_parts,
            max_message_bytes=cast(int | None, max_message_bytes),
            max_tokens=cast(int | None, max_tokens),
        )


def limit_max_tokens(arguments: Mapping[str, Any], limit: int, default: object = None) -> dict[str, Any]:
    """A copy of a model tool's arguments whose `max_tokens` (or, when absent, the tool's `default`) is at
    most `limit`: an absent budget whose default exceeds the limit is set to the limit explicitly."""
    limited = dict(arguments)
    asked = limited.get("max_tokens", default)
    if not _is_number(asked) or cast(float, asked) > limit:
        limited["max_tokens"] = limit
    return limited


def redact(document: Any, paths: Iterable[str]) -> Any:
    """A copy of `document` with the value at each dotted path replaced by `REDACTED`.

    A segment names an object key, a list index (digits), or `*` (every element or value). A path
    that leads nowhere changes nothing: obligations may name fields a given call does not carry.
    """
    result = _copy(document)
    for path in paths:
        result = _redact_at(result, path.split("."))
    return result


def cap_arguments(arguments: Mapping[str, Any], caps: Mapping[str, int | float]) -> dict[str, Any]:
    """A copy of `arguments` with each numeric argument above its cap lowered to the cap.

    A capped integer stays an integer when the cap is integral, so an integer schema still holds.
    Non-numbers are left alone (the policy's limit rules deny those).
    """
    capped = dict(arguments)
    for name, limit in caps.items():
        value = capped.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool) and value > limit:
            capped[name] = int(limit) if isinstance(value, int) and float(limit).is_integer() else limit
    return capped


def redact_tool_result(result: Mapping[str, Any], paths: Iterable[str]) -> dict[str, Any]:
    """A copy of a wire `CallToolResult` with `paths` redacted in `structuredContent` and in text
    blocks whose text is a JSON object or array (re-serialized compactly); other text is unchanged."""
    paths = tuple(paths)
    redacted = dict(result)
    if "structuredContent" in redacted:
        redacted["structuredContent"] = redact(redacted["structuredContent"], paths)
    content = redacted.get("content")
    if isinstance(content, list):
        redacted["content"] = [_redact_block(block, paths) for block in cast(list[Any], content)]
    return redacted


def result_size(result: Mapping[str, Any]) -> int:
    """Bytes of a wire `CallToolResult`'s `content`, `structuredContent` and `isError` as compact UTF-8 JSON."""
    body = {k: result[k] for k in ("content", "structuredContent", "isError") if k in result}
    return len(json.dumps(body, separators=(",", ":"), ensure_ascii=False, default=str).encode())


def withheld_result(size: int, limit: int) -> dict[str, Any]:
    """The wire `CallToolResult` served instead of one over `max_result_bytes`: a tool error saying why."""
    text = f"result withheld by policy: {size} bytes exceeds max_result_bytes {limit}"
    return {"content": [{"type": "text", "text": text}], "isError": True}


def redact_message_parts(parts: Iterable[Any], paths: Iterable[str]) -> list[Any]:
    """A copy of an A2A message's `parts` (A2A JSON) with `paths` redacted in each data part's `data`,
    and in each text part whose text is a JSON object or array (re-serialized compactly).

    Paths are relative to the part's value (`card.number`, `travellers.*.passport`), not to the part:
    every data part is treated alike, as the policy cannot know which part carries what. Other text,
    file parts and each part's `metadata` are unchanged.
    """
    paths = tuple(paths)
    redacted: list[Any] = []
    for part in parts:
        if isinstance(part, dict) and "data" in part:
            part = cast(dict[str, Any], part)
            redacted.append({**part, "data": redact(part["data"], paths)})
        else:
            redacted.append(_redact_json_text(part, paths))
    return redacted


def file_parts(parts: Iterable[Any]) -> list[int]:
    """The indexes of an A2A message's file parts (A2A JSON: a part with `raw` bytes or a `url`)."""
    return [i for i, part in enumerate(parts) if isinstance(part, dict) and ("raw" in part or "url" in part)]


def message_size(parts: Iterable[Any]) -> int:
    """Bytes of an A2A message's `parts` (A2A JSON, raw bytes in base64) as compact UTF-8 JSON."""
    return len(json.dumps(list(parts), separators=(",", ":"), ensure_ascii=False, default=str).encode())


def _redact_block(block: Any, paths: tuple[str, ...]) -> Any:
    return _redact_json_text(block, paths) if _is_text_block(block) else block


def _is_text_block(block: Any) -> bool:
    return isinstance(block, dict) and cast(dict[str, Any], block).get("type") == "text"


def _redact_json_text(block: Any, paths: tuple[str, ...]) -> Any:
    """`block` with its `text`, when that is a JSON object or array, redacted and re-serialized compactly."""
    if not isinstance(block, dict):
        return block
    block = cast(dict[str, Any], block)
    text = block.get("text")
    if not isinstance(text, str):
        return block
    try:
        parsed = json.loads(text)
    except ValueError:
        return block
    if not isinstance(parsed, dict | list):
        return block
    return {**block, "text": json.dumps(redact(parsed, paths), separators=(",", ":"), ensure_ascii=False)}


def _redact_at(node: Any, segments: list[str]) -> Any:
    head, rest = segments[0], segments[1:]
    if isinstance(node, dict):
        node = cast(dict[str, Any], node)
        keys = list(node) if head == WILDCARD else [head] if head in node else []
        for key in keys:
            node[key] = _redact_at(node[key], rest) if rest else REDACTED
    elif isinstance(node, list):
        node = cast(list[Any], node)
        if head == WILDCARD:
            indexes: Iterable[int] = range(len(node))
        else:
            indexes = [int(head)] if head.isdigit() and int(head) < len(node) else []
        for index in indexes:
            node[index] = _redact_at(node[index], rest) if rest else REDACTED
    return node


def _copy(document: Any) -> Any:
    if isinstance(document, dict):
        return {k: _copy(v) for k, v in cast(dict[str, Any], document).items()}
    if isinstance(document, list):
        return [_copy(v) for v in cast(list[Any], document)]
    return document


def _paths(raw: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = raw.get(key, [])
    if not _is_str_list(value) or not all(p and "" not in p.split(".") for p in cast(list[str], value)):
        raise ObligationError(f"obligations.{key} must be a list of dotted paths")
    return tuple(cast(list[str], value))


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in cast(list[Any], value))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
