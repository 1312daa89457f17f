"""The policy decision point: one input document in, one `Decision` out, failing closed.

Whatever the engine does (raise, answer undefined, answer a malformed document), the result is
a `Decision`; only a well-formed `{"allow": true, ...}` from the policy allows. Never raises.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any, cast

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from meshgate.errors import MeshError
from policies.decision import Decision
from policies.engine import PolicyEngine
from policies.input import PolicyInput

logger = logging.getLogger(__name__)

DEFAULT_QUERY = "data.meshgate.mcp.decision"


class _Malformed(Exception):
    """The engine's answer is not a decision document; the message says what is wrong."""


class PolicyDecisionPoint:
    """Asks `engine` for the decision document at `query` and turns it into a `Decision`."""

    def __init__(self, engine: PolicyEngine, query: str = DEFAULT_QUERY, *, tracer: trace.Tracer | None = None) -> None:
        """`tracer` defaults to the global provider's `meshgate.policies` tracer."""
        self._engine = engine
        self._query = query
        self._tracer = tracer or trace.get_tracer("meshgate.policies")

    @property
    def engine(self) -> PolicyEngine:
        return self._engine

    @property
    def query(self) -> str:
        return self._query

    def decide(self, input_doc: PolicyInput) -> Decision:
        """Evaluate the query for `input_doc`; a failure is a deny whose `error` says why."""
        decision_id = uuid.uuid4().hex
        with self._tracer.start_as_current_span("policy.decide") as span:
            start = time.perf_counter_ns()
            allow, reasons, obligations, error = self._evaluate(input_doc)
            latency_us = (time.perf_counter_ns() - start) // 1000
            decision = Decision(
                allow=allow,
                reasons=reasons,
                decision_id=decision_id,
                obligations=obligations,
                engine=self._engine.name,
                bundle_revision=self._revision(),
                latency_us=latency_us,
                error=error,
            )
            span.set_attributes(
                {
                    "policy.decision_id": decision_id,
                    "policy.allow": allow,
                    "policy.action": str(input_doc.get("action", "")),
                    "policy.engine": self._engine.name,
                }
            )
            if error:
                span.set_status(Status(StatusCode.ERROR, error))
        return decision

    def _evaluate(self, input_doc: PolicyInput) -> tuple[bool, tuple[str, ...], dict[str, Any], str]:
        # Arguments of a request that was not decided stay out of the audit log, exempt or not.
        closed: dict[str, Any] = {"audit_arguments": False}
        try:
            value = self._engine.evaluate(self._query, dict(input_doc))
        except MeshError as exc:
            return False, (f"policy engine error: {exc.detail}",), closed, f"{exc.code}: {exc.detail}"
        except Exception as exc:
            # The fail-closed boundary: a foreign engine's error is a deny, logged in full here and
            # named only by its type in the reasons (its text may quote policy source).
            logger.exception("policy engine %s failed on %s", self._engine.name, self._query)
            return False, (f"policy engine error: {type(exc).__name__}",), closed, f"{type(exc).__name__}: {exc}"
        if value is None:
            return False, ("policy decision undefined",), closed, f"{self._query} is undefined for this input"
        try:
            allow, reasons, obligations = _parse(value)
        except _Malformed as exc:
            return False, ("policy decision malformed",), closed, f"{self._query} is malformed: {exc}"
        return allow, reasons, obligations, ""

    def _revision(self) -> str:
        try:
            return self._engine.revision
        except Exception:
            logger.exception("policy engine %s has no revision", self._engine.name)
            return ""


def _parse(value: Any) -> tuple[bool, tuple[str, ...], dict[str, Any]]:
    """Check the decision document `{"allow": bool, "reasons": [str], "obligations": {...}}`.

    `reasons` and `obligations` may be absent (none given); present, they must have their types,
    as must the obligations the mesh enforces (`visible`, `audit_arguments`).
    """
    if not isinstance(value, dict):
        raise _Malformed(f"expected an object, got {type(value).__name__}")
    doc = cast(dict[str, Any], value)
    allow = doc.get("allow")
    if not isinstance(allow, bool):
        raise _Malformed("allow must be a boolean")
    reasons = doc.get("reasons", [])
    if not _is_str_list(reasons):
        raise _Malformed("reasons must be a list of strings")
    obligations = doc.get("obligations", {})
    if not isinstance(obligations, dict):
        raise _Malformed("obligations must be an object")
    obligations = cast(dict[str, Any], obligations)
    if not _is_str_list(obligations.get("visible", [])):
        raise _Malformed("obligations.visible must be a list of strings")
    if not isinstance(obligations.get("audit_arguments", True), bool):
        raise _Malformed("obligations.audit_arguments must be a boolean")
    return allow, tuple(cast(list[str], reasons)), dict(obligations)


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in cast(list[Any], value))
