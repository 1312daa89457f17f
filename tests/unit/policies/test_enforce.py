"""`enforce` returns an allowing decision and raises, decision attached, on anything else."""

from __future__ import annotations

from typing import Any

import pytest

from meshgate.errors import PolicyDenied, PolicyUnavailable
from policies.decision import Decision
from policies.enforce import decision_of, enforce, raise_for
from policies.input import PolicyInput
from policies.pdp import PolicyDecisionPoint


class FakeEngine:
    name = "fake"
    revision = "rev123"

    def __init__(self, answer: Any) -> None:
        self.answer = answer

    def evaluate(self, query: str, input_doc: dict[str, Any]) -> Any:
        return self.answer


INPUT: PolicyInput = {
    "version": 1,
    "subject": {"id": "alice", "tenant": "globex", "roles": [], "issuer": "apikey"},
    "action": "mcp.tools/call",
    "resource": {"kind": "tool", "id": "notes_search_notes"},
    "arguments": {},
    "context": {"time": "", "trace_id": "", "request_size": 0, "client": "", "protocol_version": ""},
}


def test_allowed_request_returns_its_decision() -> None:
    pdp = PolicyDecisionPoint(FakeEngine({"allow": True, "reasons": ["ok"], "obligations": {}}))

    decision = enforce(pdp, INPUT)

    assert (decision.allow, decision.reasons) == (True, ("ok",))


def test_denied_request_raises_policy_denied_with_reasons_id_and_decision() -> None:
    reasons = ["tool notes_search_notes is not allowed for tenant globex", "notes_search_notes requires role x"]
    pdp = PolicyDecisionPoint(FakeEngine({"allow": False, "reasons": reasons, "obligations": {}}))

    with pytest.raises(PolicyDenied) as caught:
        enforce(pdp, INPUT)

    assert caught.value.code == "policy_denied"
    assert caught.value.data["reasons"] == reasons
    decision = decision_of(caught.value)
    assert decision is not None and decision.reasons == tuple(reasons)
    assert caught.value.data["decision_id"] == decision.decision_id
    assert all(reason in caught.value.detail for reason in reasons)


def test_undecidable_request_raises_policy_unavailable() -> None:
    pdp = PolicyDecisionPoint(FakeEngine(None))

    with pytest.raises(PolicyUnavailable) as caught:
        enforce(pdp, INPUT)

    assert caught.value.code == "policy_unavailable"
    assert caught.value.data["reasons"] == ["policy decision undefined"]
    decision = decision_of(caught.value)
    assert decision is not None and decision.error


def test_an_allow_flagged_as_an_error_is_not_served() -> None:
    decision = Decision(allow=True, reasons=(), decision_id="d1", error="engine failed")

    with pytest.raises(PolicyUnavailable) as caught:
        raise_for(decision)

    assert caught.value.code == "policy_unavailable"


def test_error_without_a_decision_has_none_attached() -> None:
    assert decision_of(PolicyDenied("denied elsewhere")) is None
