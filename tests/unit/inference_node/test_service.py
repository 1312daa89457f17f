from __future__ import annotations

from inference_node.service import GRPC_STATUS
from meshgate.errors import all_error_classes


def test_every_mesh_error_has_a_grpc_status() -> None:
    assert sorted(c.__name__ for c in all_error_classes() if c not in GRPC_STATUS) == []
