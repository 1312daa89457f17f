"""The policy decision point: one input document in, one `Decision` out, failing closed.

Whatever the engine does (raise, answer undefined, answer a malformed document), the result is
a `Decision`; only a well-formed `{"allow": true, ...}` from the policy allows. Never raises.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any, cast

from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from meshgate.errors import MeshError
from policies.decision import Decision
from policies.engine import PolicyEngine
from policies.input import PolicyInput
from policies.obligations import ObligationError, Obligations

logger = logging.getLogger(__name__)

DEFAULT_QUERY = "data.meshgate.mcp.decision"


class _Malformed(Exception):
    """The engine's answer is not a decision document; the message says what is wrong."""


class PolicyDecisionPoint:
    """Asks `engine` for the decision document at `query` and turns it into a `Decision`."""

    def __init__(
        self,
        engine: PolicyEngine,
        query: str = DEFAULT_QUERY,
        *,
        tracer: trace.Tracer | None = None,
        shadow: PolicyEngine | None = None,
    ) -> None:
        """`tracer` defaults to the global provider's `meshgate.policies` tracer.

        `shadow`, a draft bundle's engine, is asked the same query after every live decision; where its
        allow or reasons differ, the difference is logged and counted (`shadow_stats`), never enforced.
        """
        self._engine = engine
        self._query = query
        self._tracer = tracer or trace.get_tracer("meshgate.policies")
        # The shadow is its own decision point (failing closed the same way), untraced.
        self._shadow = PolicyDecisionPoint(shadow, query, tracer=trace.NoOpTracer()) if shadow is not None else None
        self._shadow_lock = threading.Lock()
        self._shadow_counts = {"decisions": 0, "differences": 0, "errors": 0}

    @property
    def engine(self) -> PolicyEngine:
        return self._engine

    @property
    def query(self) -> str:
        return self._query

    @property
    def shadow(self) -> PolicyEngine | None:
        return self._shadow.engine if self._shadow else None

    def shadow_stats(self) -> dict[str, int]:
        """Shadow decisions made, those that differed from the live one, and those that failed."""
        with self._shadow_lock:
            return dict(self._shadow_counts)

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
        if self._shadow is not None:
            self._compare_shadow(self._shadow, input_doc, decision)
        return decision

    def _compare_shadow(self, shadow: PolicyDecisionPoint, input_doc: PolicyInput, live: Decision) -> None:
        """Log and count where the shadow disagrees with `live`; nothing here may touch the live decision."""
        counts = {"decisions": 1, "differences": 0, "errors": 0}
        try:
            draft = shadow.decide(input_doc)
        except Exception:
            # decide() never raises by contract; a shadow breaking it is counted, not propagated.
            logger.exception("shadow policy failed on decision %s", live.decision_id)
            draft = None
        resource = input_doc.get("resource", {}).get("id", "")
        if draft is None or draft.error:
            counts["errors"] = 1
            if draft is not None:
                logger.warning("shadow policy could not decide %s (%s): %s", live.decision_id, resource, draft.error)
        elif (draft.allow, draft.reasons) != (live.allow, live.reasons):
            counts["differences"] = 1
            logger.warning(
                "shadow policy differs on decision %s: %s %s: live allow=%s reasons=%s; shadow allow=%s reasons=%s",
                live.decision_id,
                input_doc.get("action", ""),
                resource,
                live.allow,
                list(live.reasons),
                draft.allow,
                list(draft.reasons),
            )
        with self._shadow_lock:
            for key, n in counts.items():
                self._shadow_counts[key] += n

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
            allow, reasons, obligations = _parse(value, str(input_doc.get("action", "")))
        except _Malformed as exc:
            return False, ("policy decision malformed",), closed, f"{self._query} is malformed: {exc}"
        return allow, reasons, obligations, ""

    def _revision(self) -> str:
        try:
            return self._engine.revision
        except Exception:
            logger.exception("policy engine %s has no revision", self._engine.name)
            return ""


def _parse(value: Any, action: str) -> tuple[bool, tuple[str, ...], dict[str, Any]]:
    """Check the decision document `{"allow": bool, "reasons": [str], "obligations": {...}}`.

    `reasons` and `obligations` may be absent (none given); present, they must have their types, and
    every obligation must be one the mesh enforces on `action`, well typed (`policies/obligations.py`).
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
    try:
        Obligations.parse(obligations, action)
    except ObligationError as exc:
        raise _Malformed(str(exc)) from exc
    return allow, tuple(cast(list[str], reasons)), dict(obligations)


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in cast(list[Any], value))
