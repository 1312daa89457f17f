"""What the policy decision point answers: allow or not, why, and what the mesh must then do."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Decision:
    allow: bool
    reasons: tuple[str, ...]
    decision_id: str
    obligations: dict[str, Any] = field(default_factory=dict[str, Any])
    """What the mesh must do besides allowing, as the policy returned it, checked by the decision point;
    `policies.obligations.Obligations.parse` types it and says what each key does."""
    engine: str = ""
    bundle_revision: str = ""
    latency_us: int = 0
    error: str = ""
    """Non-empty when the engine could not decide (it failed, or the decision was undefined or
    malformed): the deny is then a fail-closed one, not the policy's answer."""

    @property
    def visible(self) -> tuple[str, ...]:
        items = self.obligations.get("visible", ())
        return tuple(str(i) for i in items)
