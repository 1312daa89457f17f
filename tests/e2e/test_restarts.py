"""Supervised children that exit are started again (`meshgate.processes.supervise_forever`), over real processes.

The backoff in these tests is scaled down (`FAST`); what is checked is the sequence of delays the helper
chose, never how long anything took.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Coroutine, Generator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import anyio
import pytest
from anyio.abc import Process

from inference_node.launcher import NodeLauncher
from meshgate.config import Config, InferenceConfig, InferenceNodeConfig, RegistryConfig
from meshgate.processes import Backoff, Exited, supervise_forever
from tests.e2e.test_cli import alive

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

FAST = Backoff(first_s=0.01, max_s=0.04, reset_after_s=3600)


def exits_with(code: int) -> list[str]:
    return [sys.executable, "-c", f"raise SystemExit({code})"]


def collect(count: int) -> tuple[list[Exited], anyio.Event, Callable[[Exited], None]]:
    """`on_exit` that records each exit and sets the event at the `count`th."""
    exits: list[Exited] = []
    enough = anyio.Event()

    def on_exit(exited: Exited) -> None:
        exits.append(exited)
        if len(exits) == count:
            enough.set()

    return exits, enough, on_exit


async def until_set(enough: anyio.Event, supervise: Callable[[], Coroutine[object, None, object]]) -> None:
    """Run `supervise` until `enough` is set, then cancel it."""
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(supervise)
            await enough.wait()
            tg.cancel_scope.cancel()


async def test_an_exited_child_is_restarted_with_capped_exponential_backoff() -> None:
    exits, enough, on_exit = collect(5)
    await until_set(enough, functools.partial(supervise_forever, "child", exits_with(3), on_exit=on_exit, backoff=FAST))
    assert [(e.code, e.restarts, e.delay_s) for e in exits[:5]] == [
        (3, 1, 0.01),
        (3, 2, 0.02),
        (3, 3, 0.04),
        (3, 4, 0.04),
        (3, 5, 0.04),
    ]


async def test_the_backoff_starts_over_once_a_child_has_stayed_up_long_enough() -> None:
    exits, enough, on_exit = collect(3)
    backoff = Backoff(first_s=0.01, max_s=0.04, reset_after_s=0)  # every run counts as long enough
    supervise = functools.partial(supervise_forever, "child", exits_with(1), on_exit=on_exit, backoff=backoff)
    await until_set(enough, supervise)
    assert [e.delay_s for e in exits[:3]] == [0.01, 0.01, 0.01]


async def test_each_run_gets_its_own_environment_left_once_its_child_has_stopped() -> None:
    runs: list[str] = []
    exits, enough, on_exit = collect(3)

    @contextmanager
    def per_run() -> Generator[dict[str, str]]:
        n = sum(r.startswith("enter") for r in runs) + 1
        runs.append(f"enter {n}")
        try:
            yield {"RUN": str(n)}  # the whole environment: the child is started by absolute path
        finally:
            runs.append(f"leave {n}")

    argv = [sys.executable, "-c", "import os; raise SystemExit(int(os.environ['RUN']))"]
    supervise = functools.partial(supervise_forever, "child", argv, env=per_run, on_exit=on_exit, backoff=FAST)
    await until_set(enough, supervise)
    assert [e.code for e in exits[:3]] == [1, 2, 3]
    assert runs[:6] == ["enter 1", "leave 1", "enter 2", "leave 2", "enter 3", "leave 3"]
    assert len(runs) % 2 == 0  # cancelled: the last run's environment was left too


async def test_cancelling_stops_the_running_child_and_restarts_nothing() -> None:
    started: list[Process] = []

    async def on_start(process: Process) -> None:
        started.append(process)

    argv = [sys.executable, "-c", "import time; time.sleep(600)"]
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            first = await tg.start(functools.partial(supervise_forever, "sleeper", argv, on_start=on_start))
            tg.cancel_scope.cancel()
            assert first in started  # `start()` returns the first child
    [process] = started  # cancelled: nothing was restarted
    assert process.returncode is not None and not alive(process.pid)


async def test_a_node_that_exits_is_restarted_and_its_state_says_so(tmp_path: Path) -> None:
    # A real `meshgate node` that exits at once (code 2: its weights file does not exist).
    node = InferenceNodeConfig(name="n1", weights="missing.gguf")
    config = Config(
        registry=RegistryConfig(url="sqlite:///registry.db"),
        inference=InferenceConfig(enabled=True, nodes=(node,)),
        base_dir=str(tmp_path),
    )
    launcher = NodeLauncher(config, backoff=FAST)
    pids: set[int] = set()
    async with launcher.running():
        state = launcher.states["n1"]
        with anyio.fail_after(60):
            while state.restarts < 2:  # each start and exit of a real interpreter: polled, bounded
                if state.pid is not None:
                    pids.add(state.pid)
                await anyio.sleep(0.02)
        assert launcher.health()["n1"] == asdict(state)  # what /healthz shows under `nodes`
        assert state.exit_code == 2 and state.restarts >= 2
        assert state.error.startswith("exited with code 2; restart ")
    assert len(pids) >= 2 and not any(alive(pid) for pid in pids)
