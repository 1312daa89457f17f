"""The broker's one policy point: every relayed A2A call is decided, traced and audited here.

`PolicyGate.check` builds the shared input document (policies/input.py: subject, action, resource with
the target agent, its organisation and skill, the message parts, the delegation chain, context), asks
the decision point (query `broker.query`, `data.meshgate.a2a.decision` by default), opens the call's
span and, on a deny, audits it and raises (`policies.raise_for`: fail closed). A message larger than
`broker.max_message_bytes` is refused (and audited) before the decision point is asked. `Check.record`
audits the allowed call once its outcome is known, exactly as the gateway does (`registry.audit.AuditLog`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from opentelemetry import trace
from opentelemetry.trace import Span

from meshgate.errors import PayloadTooLarge
from meshgate.principal import Principal
from policies import PolicyDecisionPoint, raise_for
from policies.decision import Decision
from policies.input import INPUT_VERSION, DelegationHop, PolicyInput, ResourceDoc, audited_input, subject_doc
from policies.obligations import message_size
from registry.audit import AuditLog
from registry.models import AuditRecord

_tracer = trace.get_tracer("meshgate.a2a_broker")


@dataclass(frozen=True, slots=True)
class CallInfo:
    """What the transport knows about the inbound call, for `context`."""

    client: str = ""
    request_size: int = 0
    protocol_version: str = "1.0"


@dataclass(slots=True)
class Check:
    """An allowed call: its decision, the input it was made on, and its open span."""

    gate: PolicyGate
    principal: Principal
    decision: Decision
    policy_input: PolicyInput
    span: Span

    def record(self, outcome: str) -> None:
        """Audit the call with its outcome (`ok`, or the error code) and end its span."""
        self.gate.audit(self.principal, self.decision, self.policy_input, outcome)
        self.span.set_attribute("meshgate.outcome", outcome)
        self.span.end()


class PolicyGate:
    def __init__(self, pdp: PolicyDecisionPoint, audit: AuditLog, *, max_message_bytes: int | None = None) -> None:
        self._pdp = pdp
        self._audit = audit
        self._max_message_bytes = max_message_bytes

    def check(
        self,
        principal: Principal,
        action: str,
        resource: ResourceDoc,
        *,
        message: dict[str, Any] | None,
        delegation: list[DelegationHop],
        call: CallInfo,
        denied_outcome: str = "denied",
    ) -> Check:
        """Decide the call; on an allow, return it with its span open (end it with `Check.record`).

        `message` (`{parts, …}`, A2A JSON) reaches the policy with `size_bytes` added (`message_size`).
        `denied_outcome` is what a deny is audited as (`agent_not_found` for an unknown target agent).

        Raises:
            PayloadTooLarge: the message exceeds `max_message_bytes` (audited, span ended, no decision).
            PolicyDenied: the policy denied the call (audited, span ended).
            PolicyUnavailable: the engine could not decide (audited, span ended).
        """
        span = _tracer.start_span(
            f"a2a {action}",
            attributes={"a2a.agent": resource.get("agent", ""), "a2a.skill": resource.get("skill", "")},
        )
        trace_id = span.get_span_context().trace_id
        policy_input: PolicyInput = {
            "version": INPUT_VERSION,
            "subject": subject_doc(principal),
            "action": action,
            "resource": resource,
            "arguments": {},
            "delegation": delegation,
            "context": {
                "time": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "trace_id": f"{trace_id:032x}" if trace_id else "",
                "request_size": call.request_size,
                "client": call.client,
                "protocol_version": call.protocol_version,
            },
        }
        if message is not None:
            size = message_size(message.get("parts", []))
            policy_input["message"] = {**message, "size_bytes": size}
            if self._max_message_bytes is not None and size > self._max_message_bytes:
                self._refuse_oversized(principal, policy_input, span, size, self._max_message_bytes)
        decision = self._pdp.decide(policy_input)
        span.set_attributes(
            {
                "policy.decision_id": decision.decision_id,
                "policy.allow": decision.allow,
                "enduser.id": principal.subject,
                "meshgate.tenant": principal.tenant,
                "meshgate.delegation_depth": len(delegation),
            }
        )
        if not decision.allow or decision.error:
            self.audit(principal, decision, policy_input, denied_outcome)
            span.set_attribute("meshgate.outcome", denied_outcome)
            span.end()
            raise_for(decision)
        return Check(self, principal, decision, policy_input, span)

    def _refuse_oversized(
        self, principal: Principal, policy_input: PolicyInput, span: Span, size: int, limit: int
    ) -> None:
        # Refused by configuration, not by policy: audited as a deny with no engine, so the log still
        # records every message the broker turned away.
        reason = f"message of {size} bytes exceeds the broker's max_message_bytes {limit}"
        decision = Decision(allow=False, reasons=(reason,), decision_id=uuid4().hex, engine="broker-config")
        span.set_attributes({"policy.decision_id": decision.decision_id, "policy.allow": False})
        self.audit(principal, decision, policy_input, PayloadTooLarge.code)
        span.set_attribute("meshgate.outcome", PayloadTooLarge.code)
        span.end()
        raise PayloadTooLarge(reason, reasons=[reason], decision_id=decision.decision_id)

    def audit(self, principal: Principal, decision: Decision, policy_input: PolicyInput, outcome: str) -> None:
        keep = decision.obligations.get("audit_arguments") is not False
        doc = audited_input(policy_input, None)
        doc.pop("arguments", None)
        if not keep and "message" in doc:
            doc["message"] = {"parts": []}  # the policy withholds the message's content from the log
        trace_id = policy_input["context"]["trace_id"]
        self._audit.append(
            AuditRecord(
                decision_id=decision.decision_id,
                time=datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z"),
                subject=principal.subject,
                tenant=principal.tenant,
                action=policy_input["action"],
                resource=policy_input["resource"]["id"],
                allow=decision.allow,
                reasons=decision.reasons,
                latency_us=decision.latency_us,
                engine=decision.engine,
                bundle_revision=decision.bundle_revision,
                trace_id=trace_id,
                arguments=None,
                outcome=outcome,
                input=doc,
            )
        )
