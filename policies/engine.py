"""The seam between the decision point and a Rego evaluator."""

from __future__ import annotations

from typing import Any, Protocol


class PolicyEngine(Protocol):
    """Evaluates a Rego query against the loaded bundle.

    `evaluate` returns the JSON value of the query, or None when it is undefined, and raises
    `meshgate.errors.PolicyUnavailable` when the engine itself fails. It never decides; the
    decision point turns the value into a `Decision` and fails closed.
    """

    name: str

    @property
    def revision(self) -> str:
        """A stable hash of the loaded bundle (rego files and data), for the audit log."""
        ...

    def evaluate(self, query: str, input_doc: dict[str, Any]) -> Any: ...
