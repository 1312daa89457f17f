from __future__ import annotations

from a2a.utils import errors as a2a_errors

from a2a_broker.wire_errors import A2A_ERROR, MeshWireError, PolicyDeniedError, register, to_a2a_error
from meshgate.errors import PolicyDenied, all_error_classes


def test_every_mesh_error_has_an_a2a_error() -> None:
    assert sorted(c.__name__ for c in all_error_classes() if c not in A2A_ERROR) == []


def test_every_wire_error_is_registered_with_the_sdk() -> None:
    register()
    for cls in MeshWireError.__subclasses__():
        assert a2a_errors.JSON_RPC_ERROR_CODE_MAP[cls] == cls.jsonrpc_code
        assert a2a_errors.A2A_ERROR_MAPPING[cls] == cls.mapping


def test_a_policy_deny_carries_its_reasons_and_decision_id_as_strings() -> None:
    error = to_a2a_error(PolicyDenied("denied", reasons=["a", "b"], decision_id="d1"))
    assert isinstance(error, PolicyDeniedError)
    # the SDK types `data` as a bare `dict`
    assert error.data == {"code": "policy_denied", "reasons": "a; b", "decision_id": "d1"}  # pyright: ignore[reportUnknownMemberType]
