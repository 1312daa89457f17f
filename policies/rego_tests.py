"""Runs a bundle's Rego unit tests (`*_test.rego`) as `opa test` would, on the serving engine.

A test is a rule named `test_*` in a package whose last segment ends in `_test`; it passes iff
its value is exactly `true`. Behind `meshgate policy test`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from policies.bundle import PolicyBundle, load_bundle
from policies.regorus_engine import build_engine, one_line

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True, slots=True)
class RegoTestResult:
    name: str
    """The rule's full path, e.g. `data.meshgate.mcp_test.test_admin_may_call_anything`."""
    passed: bool
    error: str = ""
    """Set when evaluation raised (a Rego runtime error); empty for a plain failure."""


def run_rego_tests(bundle_dir: Path) -> list[RegoTestResult]:
    """Load every module of `bundle_dir`, tests included, plus its data, and run each test.

    Raises:
        PolicyBundleInvalid: a module or data file does not load.
    """
    return run_bundle_tests(load_bundle(bundle_dir, include_tests=True))


def run_bundle_tests(bundle: PolicyBundle) -> list[RegoTestResult]:
    """Run the tests of a bundle already read with `include_tests=True` (the watcher tests what it serves).

    Raises:
        PolicyBundleInvalid: a module or data file does not load.
    """
    engine = build_engine(bundle)
    results: list[RegoTestResult] = []
    for module in json.loads(engine.get_ast_as_json()):
        package = _ref_path(module["ast"]["package"]["refr"])
        if not package or not package[-1].endswith("_test"):
            continue
        for rule in _test_rules(module["ast"]["rules"]):
            name = _query(["data", *package, rule])
            try:
                value = engine.eval_rule(name)
            except Exception as exc:
                results.append(RegoTestResult(name, passed=False, error=one_line(exc)))
                continue
            results.append(RegoTestResult(name, passed=value is True))
    return results


def _test_rules(rules: list[dict[str, Any]]) -> list[str]:
    """Names of the `test_*` rules, once each, in source order; functions are not tests."""
    names: list[str] = []
    for rule in rules:
        # regorus's AST: `{"Spec": {"head": {"Compr": {"refr": ...}}}}` or `{"Default": {"refr": ...}}`.
        head = rule.get("Spec", {}).get("head", {}).get("Compr") or rule.get("Default")
        path = _ref_path(head["refr"]) if head else []
        if len(path) == 1 and path[0].startswith("test_") and path[0] not in names:
            names.append(path[0])
    return names


def _ref_path(ref: dict[str, Any]) -> list[str]:
    """`a.b["c-d"]` as `["a", "b", "c-d"]`; [] for anything else (a computed key)."""
    if "Var" in ref:
        return [ref["Var"]["value"]]
    if "RefDot" in ref:
        head = _ref_path(ref["RefDot"]["refr"])
        return [*head, ref["RefDot"]["field"][1]] if head else []
    if "RefBrack" in ref and "String" in ref["RefBrack"]["index"]:
        head = _ref_path(ref["RefBrack"]["refr"])
        return [*head, ref["RefBrack"]["index"]["String"]["value"]] if head else []
    return []


def _query(path: list[str]) -> str:
    return path[0] + "".join(f".{p}" if _IDENTIFIER.fullmatch(p) else f"[{json.dumps(p)}]" for p in path[1:])
