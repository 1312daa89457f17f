"""Hot reload and shadow mode on a running gateway: bundle edits reach clients over real sockets without a restart.

Every wait polls until a generous deadline; how fast a reload lands is `bench/policy_reload.py`'s to measure.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.shared.exceptions import MCPError

from policies import DEFAULT_BUNDLE
from tests.e2e.gateway_harness import RunningGateway, config_for, echo_upstream, health, running_gateway

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

DEADLINE_S = 10.0
POLL_S = 0.05
TENANTS = "data/tenants.json"
RULES = "rego/meshgate/mcp.rego"


def copy_bundle(to: Path) -> Path:
    shutil.copytree(DEFAULT_BUNDLE / "rego", to / "rego")
    shutil.copytree(DEFAULT_BUNDLE / "data", to / "data")
    return to


def set_public_tools(bundle: Path, *extra: str) -> None:
    """Tenant `public` may call its shipped tools plus `extra` (written in one write)."""
    data: dict[str, Any] = json.loads((DEFAULT_BUNDLE / TENANTS).read_text())
    data["meshgate"]["tenants"]["public"]["tools"].extend(extra)
    (bundle / TENANTS).write_text(json.dumps(data, indent=2))


@asynccontextmanager
async def gateway_on(tmp_path: Path, bundle: Path, shadow: Path | None = None) -> AsyncGenerator[RunningGateway, None]:
    policy: dict[str, Any] = {"bundle": str(bundle), "watch_interval_s": 0.05}
    if shadow is not None:
        policy["shadow_bundle"] = str(shadow)
    config = config_for(tmp_path, [echo_upstream()], policy=policy)
    async with running_gateway(config, tmp_path / "registry.db") as gw:
        yield gw


async def echo_allowed(gw: RunningGateway) -> bool:
    """Whether anonymous (tenant `public`) may call echo_echo; any error but a policy deny fails the test."""
    async with gw.client() as client:
        try:
            result = await client.call_tool("echo_echo", {"text": "hi"})
        except MCPError as exc:
            assert exc.code == -32030, exc
            return False
    assert not result.is_error, result
    return True


async def eventually(probe: Callable[[], Awaitable[bool]]) -> None:
    # Polling, not an event: the change starts as a file write the gateway notices on its own schedule.
    with anyio.fail_after(DEADLINE_S):
        while not await probe():
            await anyio.sleep(POLL_S)


def last_reload(body: dict[str, Any]) -> dict[str, Any]:
    reload: Any = body["policy"]["last_reload"]
    assert isinstance(reload, dict)
    return dict(reload)  # pyright: ignore[reportUnknownArgumentType]


async def rejected(gw: RunningGateway) -> bool:
    reload = (await health(gw.base))["policy"]["last_reload"]
    return reload is not None and reload["ok"] is False


async def test_an_edit_that_allows_a_denied_call_is_served_without_a_restart(tmp_path: Path) -> None:
    bundle = copy_bundle(tmp_path / "bundle")
    async with gateway_on(tmp_path, bundle) as gw:
        assert not await echo_allowed(gw)
        before = (await health(gw.base))["policy"]["revision"]

        set_public_tools(bundle, "echo_echo")
        await eventually(lambda: echo_allowed(gw))

        body = await health(gw.base)
        reload = last_reload(body)
        assert reload["ok"] is True and reload["error"] == ""
        assert reload["revision"] == body["policy"]["revision"] != before


async def test_a_syntax_error_is_rejected_with_its_place_and_the_old_decision_keeps_serving(tmp_path: Path) -> None:
    bundle = copy_bundle(tmp_path / "bundle")
    async with gateway_on(tmp_path, bundle) as gw:
        before = (await health(gw.base))["policy"]["revision"]
        rules = bundle / RULES
        rules.write_text(rules.read_text().replace("decision := {", "decision := {{", 1))
        await eventually(lambda: rejected(gw))
        # A later edit that would allow the call is rejected too while the rules stay broken.
        set_public_tools(bundle, "echo_echo")
        await eventually(lambda: rejected(gw))

        assert not await echo_allowed(gw)
        body = await health(gw.base)
        reload = last_reload(body)
        assert re.match(rf"{RULES}:\d+:\d+: expecting", reload["error"]), reload
        assert reload["revision"] == body["policy"]["revision"] == before


async def test_a_bundle_whose_rego_tests_fail_is_rejected_and_its_fix_is_served(tmp_path: Path) -> None:
    bundle = copy_bundle(tmp_path / "bundle")
    async with gateway_on(tmp_path, bundle) as gw:
        # The shipped tests say public may not call toolbox_hash_text.
        set_public_tools(bundle, "echo_echo", "toolbox_hash_text")
        await eventually(lambda: rejected(gw))

        assert not await echo_allowed(gw)
        error = last_reload(await health(gw.base))["error"]
        assert "data.meshgate.mcp_test.test_public_tenant_may_call_only_its_listed_tools" in error

        set_public_tools(bundle, "echo_echo")
        await eventually(lambda: echo_allowed(gw))
        assert last_reload(await health(gw.base))["ok"] is True


async def test_a_shadow_bundle_that_denies_is_counted_and_never_enforced(tmp_path: Path) -> None:
    live = copy_bundle(tmp_path / "live")
    set_public_tools(live, "echo_echo")
    shadow = copy_bundle(tmp_path / "shadow")  # the shipped bundle: public may not call echo_echo
    async with gateway_on(tmp_path, live, shadow) as gw:
        assert await echo_allowed(gw)

        body = await health(gw.base)
        counts = body["policy"]["shadow"]
        assert counts["revision"] != body["policy"]["revision"]
        assert counts["decisions"] >= 1 and counts["differences"] >= 1 and counts["errors"] == 0

        # The shadow hot reloads too: made equal to the live bundle, it serves the live revision.
        set_public_tools(shadow, "echo_echo")

        async def shadow_matches_live() -> bool:
            policy = (await health(gw.base))["policy"]
            return policy["shadow"]["revision"] == policy["revision"]

        await eventually(shadow_matches_live)
        assert (await health(gw.base))["policy"]["shadow"]["last_reload"]["ok"] is True
