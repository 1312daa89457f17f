"""Base-install smoke: without vllm the engine module imports, and opening the engine names the extra."""

from __future__ import annotations

import importlib.util

import pytest

from meshgate.errors import MissingDependency

pytestmark = pytest.mark.anyio


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed: nothing is missing")
async def test_vllm_engine_without_vllm_raises_missing_dependency_with_the_extra() -> None:
    from inference_node.vllm_engine import VllmConfig, VllmEngine

    with pytest.raises(MissingDependency) as caught:
        await VllmEngine.open(VllmConfig(model="smollm2", weights="unused"))
    assert caught.value.code == "missing_dependency"
    assert caught.value.data == {"extra": "vllm"}
