"""The policy plane: one decision point over an embedded Rego engine, and the bundle it serves.

`DEFAULT_BUNDLE` is this package's own directory, holding the shipped `rego/` and `data/`.
"""

from __future__ import annotations

from pathlib import Path

from policies.decision import Decision
from policies.enforce import decision_of, enforce, raise_for
from policies.engine import PolicyEngine
from policies.input import PolicyInput
from policies.pdp import PolicyDecisionPoint
from policies.rego_tests import RegoTestResult, run_rego_tests
from policies.regorus_engine import RegorusEngine

DEFAULT_BUNDLE = Path(__file__).resolve().parent

__all__ = [
    "DEFAULT_BUNDLE",
    "Decision",
    "PolicyDecisionPoint",
    "PolicyEngine",
    "PolicyInput",
    "RegoTestResult",
    "RegorusEngine",
    "decision_of",
    "enforce",
    "raise_for",
    "run_rego_tests",
]
