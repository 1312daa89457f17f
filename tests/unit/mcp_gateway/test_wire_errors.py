from __future__ import annotations

from mcp_gateway.wire_errors import JSONRPC_CODE, to_mcp_error
from meshgate.errors import PolicyDenied, all_error_classes


def test_every_mesh_error_has_a_jsonrpc_code() -> None:
    missing = [cls.__name__ for cls in all_error_classes() if cls not in JSONRPC_CODE]
    assert missing == []


def test_error_codes_are_unique_snake_case_strings() -> None:
    codes = [cls.code for cls in all_error_classes()]
    assert len(codes) == len(set(codes))
    assert all(c.replace("_", "").isalpha() and c.islower() for c in codes)


def test_a_denial_carries_its_code_reasons_and_decision_id_on_the_wire() -> None:
    error = to_mcp_error(PolicyDenied("denied by policy: nope", reasons=["nope"], decision_id="d1"))
    assert error.code == -32030
    assert error.data == {"code": "policy_denied", "reasons": ["nope"], "decision_id": "d1"}
