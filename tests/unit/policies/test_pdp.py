"""The decision point fails closed: an engine error, an undefined or a malformed answer is a deny."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from meshgate.errors import PolicyUnavailable
from policies.input import PolicyInput
from policies.pdp import DEFAULT_QUERY, PolicyDecisionPoint


class FakeEngine:
    """Answers every query with `answer`, or raises it when it is an exception."""

    name = "fake"

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.calls: list[tuple[str, dict[str, Any]]] = []

    @property
    def revision(self) -> str:
        return "rev123"

    def evaluate(self, query: str, input_doc: dict[str, Any]) -> Any:
        self.calls.append((query, input_doc))
        if isinstance(self.answer, BaseException):
            raise self.answer
        return self.answer


def call_input(tool: str = "notes_search_notes") -> PolicyInput:
    return {
        "version": 1,
        "subject": {"id": "alice", "tenant": "acme", "roles": [], "issuer": "apikey"},
        "action": "mcp.tools/call",
        "resource": {"kind": "tool", "id": tool},
        "arguments": {"query": "x"},
        "context": {"time": "", "trace_id": "", "request_size": 0, "client": "", "protocol_version": ""},
    }


ALLOW = {"allow": True, "reasons": ["tenant acme may call notes_*"], "obligations": {"audit_arguments": True}}


def test_allowing_answer_becomes_an_allowing_decision() -> None:
    decision = PolicyDecisionPoint(FakeEngine(ALLOW)).decide(call_input())

    assert decision.allow is True
    assert decision.reasons == ("tenant acme may call notes_*",)
    assert decision.obligations == {"audit_arguments": True}
    assert decision.error == ""
    assert decision.engine == "fake"
    assert decision.bundle_revision == "rev123"
    assert len(decision.decision_id) == 32
    assert decision.latency_us >= 0


def test_policy_deny_is_not_an_engine_error() -> None:
    answer = {"allow": False, "reasons": ["no"], "obligations": {"audit_arguments": True}}

    decision = PolicyDecisionPoint(FakeEngine(answer)).decide(call_input())

    assert (decision.allow, decision.reasons, decision.error) == (False, ("no",), "")


def test_decision_point_evaluates_its_query_on_the_input() -> None:
    engine = FakeEngine(ALLOW)
    doc = call_input()

    PolicyDecisionPoint(engine).decide(doc)
    PolicyDecisionPoint(engine, "data.other.decision").decide(doc)

    assert [query for query, _ in engine.calls] == [DEFAULT_QUERY, "data.other.decision"]
    assert engine.calls[0][1] == doc


def test_every_decision_gets_its_own_id() -> None:
    pdp = PolicyDecisionPoint(FakeEngine(ALLOW))

    assert len({pdp.decide(call_input()).decision_id for _ in range(20)}) == 20


def test_engine_failure_is_a_deny_flagged_as_an_error() -> None:
    engine = FakeEngine(PolicyUnavailable("policy evaluation failed: mcp.rego:3:1: divide by zero"))

    decision = PolicyDecisionPoint(engine).decide(call_input())

    assert decision.allow is False
    assert decision.reasons == ("policy engine error: policy evaluation failed: mcp.rego:3:1: divide by zero",)
    assert decision.error.startswith("policy_unavailable: ")


def test_foreign_engine_exception_is_a_deny_that_does_not_quote_its_text() -> None:
    decision = PolicyDecisionPoint(FakeEngine(RuntimeError("secret policy source"))).decide(call_input())

    assert decision.allow is False
    assert decision.reasons == ("policy engine error: RuntimeError",)
    assert "secret policy source" in decision.error


def test_undefined_decision_is_a_deny_flagged_as_an_error() -> None:
    decision = PolicyDecisionPoint(FakeEngine(None)).decide(call_input())

    assert (decision.allow, decision.reasons) == (False, ("policy decision undefined",))
    assert decision.error == f"{DEFAULT_QUERY} is undefined for this input"


MALFORMED: list[Any] = [
    True,
    "allow",
    [ALLOW],
    {},
    {"allow": "true"},
    {"allow": 1},
    {"allow": True, "reasons": "tenant acme may call notes_*"},
    {"allow": True, "reasons": [1]},
    {"allow": True, "obligations": []},
    {"allow": True, "obligations": {"visible": "notes_search_notes"}},
    {"allow": True, "obligations": {"visible": [1]}},
    {"allow": True, "obligations": {"audit_arguments": "yes"}},
    {"allow": True, "obligations": {"frobnicate": True}},
    {"allow": True, "obligations": {"redact_arguments": "body"}},
    {"allow": True, "obligations": {"redact_arguments": ["user..email"]}},
    {"allow": True, "obligations": {"cap_arguments": {"limit": "20"}}},
    {"allow": True, "obligations": {"cap_arguments": {"limit": True}}},
    {"allow": True, "obligations": {"require_pinned": "yes"}},
    {"allow": True, "obligations": {"rate_class": 3}},
    {"allow": True, "obligations": {"redact_result": ["body"]}},
    {"allow": True, "obligations": {"max_result_bytes": 1000}},
]


@pytest.mark.parametrize("answer", MALFORMED)
def test_malformed_decision_is_a_deny_flagged_as_an_error(answer: Any) -> None:
    decision = PolicyDecisionPoint(FakeEngine(answer)).decide(call_input())

    assert (decision.allow, decision.reasons) == (False, ("policy decision malformed",))
    assert decision.error.startswith(f"{DEFAULT_QUERY} is malformed: ")


@pytest.mark.parametrize("answer", [RuntimeError("boom"), None, {"allow": "yes"}])
def test_arguments_of_an_undecided_request_are_not_audited(answer: Any) -> None:
    decision = PolicyDecisionPoint(FakeEngine(answer)).decide(call_input("notes_add_note"))

    assert decision.obligations == {"audit_arguments": False}


def test_absent_reasons_and_obligations_read_as_none_given() -> None:
    decision = PolicyDecisionPoint(FakeEngine({"allow": True})).decide(call_input())

    assert (decision.allow, decision.reasons, decision.obligations, decision.error) == (True, (), {}, "")


def test_visible_obligation_is_exposed_as_a_tuple() -> None:
    answer: dict[str, Any] = {
        "allow": True,
        "reasons": [],
        "obligations": {"visible": ["a", "b"], "audit_arguments": True},
    }

    assert PolicyDecisionPoint(FakeEngine(answer)).decide(call_input()).visible == ("a", "b")


def test_each_decision_is_one_span_carrying_its_id_and_outcome() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    pdp = PolicyDecisionPoint(FakeEngine(ALLOW), tracer=provider.get_tracer("test"))

    decision = pdp.decide(call_input())

    [span] = exporter.get_finished_spans()
    assert span.name == "policy.decide"
    assert dict(span.attributes or {}) == {
        "policy.decision_id": decision.decision_id,
        "policy.allow": True,
        "policy.action": "mcp.tools/call",
        "policy.engine": "fake",
    }


def test_engine_failure_marks_the_span_as_an_error() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    pdp = PolicyDecisionPoint(FakeEngine(None), tracer=provider.get_tracer("test"))

    pdp.decide(call_input())

    [span] = exporter.get_finished_spans()
    assert span.attributes is not None and span.attributes["policy.allow"] is False
    assert not span.status.is_ok


DENY: dict[str, Any] = {"allow": False, "reasons": ["tool notes_search_notes is not allowed for tenant acme"]}


def test_a_shadow_that_disagrees_is_counted_and_never_enforced(caplog: pytest.LogCaptureFixture) -> None:
    shadow = FakeEngine(DENY)
    pdp = PolicyDecisionPoint(FakeEngine(ALLOW), shadow=shadow)

    decision = pdp.decide(call_input())

    assert decision.allow is True and decision.reasons == ("tenant acme may call notes_*",)
    assert len(shadow.calls) == 1
    assert pdp.shadow_stats() == {"decisions": 1, "differences": 1, "errors": 0}
    [record] = [r for r in caplog.records if r.levelname == "WARNING"]
    assert decision.decision_id in record.getMessage() and "notes_search_notes" in record.getMessage()


def test_a_shadow_that_agrees_is_counted_without_a_difference() -> None:
    pdp = PolicyDecisionPoint(FakeEngine(ALLOW), shadow=FakeEngine(dict(ALLOW)))

    pdp.decide(call_input())
    pdp.decide(call_input())

    assert pdp.shadow_stats() == {"decisions": 2, "differences": 0, "errors": 0}


@pytest.mark.parametrize("answer", [PolicyUnavailable("boom"), RuntimeError("boom"), None, {"allow": "yes"}])
def test_a_failing_shadow_is_counted_and_leaves_the_live_decision_alone(answer: Any) -> None:
    pdp = PolicyDecisionPoint(FakeEngine(ALLOW), shadow=FakeEngine(answer))

    decision = pdp.decide(call_input())

    assert decision.allow is True and decision.error == ""
    assert pdp.shadow_stats() == {"decisions": 1, "differences": 0, "errors": 1}


def test_without_a_shadow_nothing_is_counted() -> None:
    pdp = PolicyDecisionPoint(FakeEngine(ALLOW))

    pdp.decide(call_input())

    assert pdp.shadow is None
    assert pdp.shadow_stats() == {"decisions": 0, "differences": 0, "errors": 0}


def test_an_unknown_or_out_of_phase_obligation_is_named_in_the_error() -> None:
    unknown = {"allow": True, "obligations": {"frobnicate": True, "audit_arguments": True}}
    early = {"allow": True, "obligations": {"max_result_bytes": 10}}

    unknown_error = PolicyDecisionPoint(FakeEngine(unknown)).decide(call_input()).error
    early_error = PolicyDecisionPoint(FakeEngine(early)).decide(call_input()).error

    assert unknown_error.endswith("is malformed: unknown obligation frobnicate")
    assert early_error.endswith("max_result_bytes applies to mcp.tools/result, not mcp.tools/call")


def test_result_obligations_are_accepted_on_a_result_decision() -> None:
    answer = {"allow": True, "obligations": {"redact_result": ["body"], "max_result_bytes": 10}}
    doc = call_input()
    doc["action"] = "mcp.tools/result"
    doc["result"] = {"content": [], "isError": False, "size_bytes": 2}

    decision = PolicyDecisionPoint(FakeEngine(answer)).decide(doc)

    assert (decision.allow, decision.error) == (True, "")
