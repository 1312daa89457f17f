"""Metering in the broker: the tokens a model agent reports are recorded against the caller who asked.

The model agents (`inference_node/a2a_agent.py`) put their token counts in the metadata of the message
that ends a task (`io.meshgate/usage`); the broker, which knows the caller, turns that into a
`UsageRecord`. Only agents the mesh runs itself (`metered_agents`) are believed.
"""

from __future__ import annotations

from typing import Any, cast

from a2a.types import Message, Task, TaskArtifactUpdateEvent, TaskStatusUpdateEvent
from google.protobuf.json_format import MessageToDict

from a2a_broker.policy import Check
from registry.usage import USAGE_META_KEY, UsageMeter, reported_usage

Event = Task | Message | TaskStatusUpdateEvent | TaskArtifactUpdateEvent


class BrokerMeter:
    def __init__(self, meter: UsageMeter | None, metered_agents: frozenset[str]) -> None:
        self._meter = meter
        self._agents = metered_agents

    def observe(self, agent_id: str, check: Check, event: Event) -> None:
        """Record the usage an event of a metered agent carries (the last message of its task); else nothing."""
        if self._meter is None or agent_id not in self._agents:
            return
        usage = _usage(event)
        if usage is None:
            return
        self._meter.record(
            reported_usage(
                usage,
                subject=check.principal.subject,
                tenant=check.principal.tenant,
                via="a2a",
                decision_id=check.decision.decision_id,
                trace_id=check.policy_input["context"].get("trace_id", ""),
                model=agent_id,
            )
        )


def _usage(event: Event) -> dict[str, Any] | None:
    if isinstance(event, Task):
        message = event.status.message if event.status.HasField("message") else None
    elif isinstance(event, TaskStatusUpdateEvent):
        message = event.status.message if event.status.HasField("message") else None
    elif isinstance(event, Message):
        message = event
    else:
        return None
    if message is None or not message.HasField("metadata"):
        return None
    usage = MessageToDict(message.metadata).get(USAGE_META_KEY)
    return cast(dict[str, Any], usage) if isinstance(usage, dict) else None
