"""Message obligations in the broker: what an allowed decision makes of a message before it is relayed.

The rules live in `policies/obligations.py` (pure, on A2A JSON); this adapter applies them to the SDK's
protobuf message. Order: `deny_file_parts`, then `max_message_bytes` (both on the message as the caller
sent it), then `max_tokens` (set as message metadata `io.meshgate/max_tokens`, which the model agents of
`inference_node/a2a_agent.py` obey), then `redact_parts`. A refusal is audited with the allowing decision
and the refusal's code as its outcome, as the gateway does for `require_pinned`.
"""

from __future__ import annotations

from typing import Any, cast

from a2a.types import Message, Part
from google.protobuf.json_format import ParseDict

from a2a_broker.policy import Check
from meshgate.errors import MeshError, PayloadTooLarge, PolicyDenied
from policies.obligations import Obligations, file_parts, redact_message_parts

MAX_TOKENS_META_KEY = "io.meshgate/max_tokens"


def screen_message(check: Check, message: Message) -> None:
    """Apply `check`'s message obligations to `message` (redacted in place) and to what the audit log keeps.

    Raises:
        PolicyDenied: `deny_file_parts` and the message carries a file part (audited, span ended).
        PayloadTooLarge: the message is larger than `max_message_bytes` (audited, span ended).
    """
    obligations = Obligations.parse(check.decision.obligations)
    doc = check.policy_input.get("message", {})
    parts: list[Any] = doc.get("parts", [])
    decision_id = check.decision.decision_id
    refusal: MeshError | None = None
    files = file_parts(parts) if obligations.deny_file_parts else []
    size = doc.get("size_bytes", 0)
    if files:
        reasons = [f"obligation deny_file_parts: part {i} is a file{_named(parts[i])}" for i in files]
        refusal = PolicyDenied(f"denied by policy: {'; '.join(reasons)}", reasons=reasons, decision_id=decision_id)
    elif obligations.max_message_bytes is not None and size > obligations.max_message_bytes:
        reason = f"obligation max_message_bytes: message of {size} bytes exceeds {obligations.max_message_bytes}"
        refusal = PayloadTooLarge(reason, reasons=[reason], decision_id=decision_id)
    if refusal is not None:
        check.record(refusal.code)
        raise refusal
    if obligations.max_tokens is not None:  # a model agent (ours) lowers its generation budget to this
        message.metadata.update({MAX_TOKENS_META_KEY: obligations.max_tokens})
    if not obligations.redact_parts:
        return
    redacted = redact_message_parts(parts, obligations.redact_parts)
    # The audit log keeps only what the target gets: the redacted parts.
    check.policy_input["message"] = {**doc, "parts": redacted}
    for index, (before, after) in enumerate(zip(parts, redacted, strict=True)):
        if before != after:
            message.parts[index].CopyFrom(ParseDict(after, Part()))


def _named(part: Any) -> str:
    name = cast(dict[str, Any], part).get("filename") if isinstance(part, dict) else None
    return f" ({name})" if isinstance(name, str) and name else ""
