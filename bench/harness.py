"""Process helpers shared by the benchmarks that drive `meshgate` as a user would (a CLI, a server)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

STOP_GRACE_S = 5.0


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate, and kill if it has not exited after STOP_GRACE_S."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_GRACE_S)


def meshgate_cli(config: Path, *args: str) -> str:
    """Run `python -m meshgate -c CONFIG ARGS…` in the config's directory; its stdout, or RuntimeError."""
    done = subprocess.run(
        [sys.executable, "-m", "meshgate", "-c", str(config), *args],
        cwd=config.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"meshgate {' '.join(args)} failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.stdout
