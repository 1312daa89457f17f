"""The one rule every adapter applies: decide, then serve only on an allow.

`PolicyDenied` means the policy said no; `PolicyUnavailable` means it could not say (fail closed).
Both carry `reasons` and `decision_id` in `exc.data`, and the `Decision` itself (see `decision_of`).
"""

from __future__ import annotations

from meshgate.errors import MeshError, PolicyDenied, PolicyUnavailable
from policies.decision import Decision
from policies.input import PolicyInput
from policies.pdp import PolicyDecisionPoint


def enforce(pdp: PolicyDecisionPoint, input_doc: PolicyInput) -> Decision:
    """The allowing `Decision` for `input_doc`.

    Raises:
        PolicyDenied: the policy denied the request.
        PolicyUnavailable: the engine failed or answered undefined or malformed (fail closed).
    """
    decision = pdp.decide(input_doc)
    raise_for(decision)
    return decision


def raise_for(decision: Decision) -> None:
    """Raise what a not-allowing `decision` maps to; return on an allow.

    Raises:
        PolicyDenied: `decision` denies and `decision.error` is empty.
        PolicyUnavailable: `decision.error` is set.
    """
    if decision.allow and not decision.error:
        return
    # `decision` rides in `data` for the audit log; wire tables send only JSON values from `data`.
    data = {"reasons": list(decision.reasons), "decision_id": decision.decision_id, "decision": decision}
    if decision.error:
        raise PolicyUnavailable(f"{PolicyUnavailable.message}: {'; '.join(decision.reasons)}", **data)
    raise PolicyDenied(f"denied by policy: {'; '.join(decision.reasons) or 'no reason given'}", **data)


def decision_of(exc: MeshError) -> Decision | None:
    """The `Decision` a `PolicyDenied` or `PolicyUnavailable` from `enforce` was raised for."""
    decision = exc.data.get("decision")
    return decision if isinstance(decision, Decision) else None
