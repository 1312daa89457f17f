"""Hot reload: notices edits to a bundle directory and serves the new bundle only once it loads and its tests pass.

`BundleWatcher.check()` is one blocking poll; `run()` repeats it on a worker thread. A rejected bundle is logged
with file:line and recorded as `last_reload`; the last good bundle keeps serving.
"""

# Why a stat() loop by hand and not watchfiles/watchdog: a bundle is a handful of small files, so polling them
# every 0.25 s costs nothing, adds no dependency, and works where inotify events never arrive (NFS, bind mounts).

from __future__ import annotations

import functools
import hashlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

import anyio
import anyio.to_thread

from meshgate.errors import PolicyBundleInvalid
from policies.bundle import TEST_SUFFIX, PolicyBundle, load_bundle
from policies.rego_tests import run_bundle_tests
from policies.regorus_engine import one_line

logger = logging.getLogger(__name__)

# Re-reads of a bundle that changed while it was being read (an editor mid-save) before giving up for this poll.
_ATTEMPTS = 3
# Failing tests named in the error; the rest are counted.
_NAMED_FAILURES = 3


@runtime_checkable
class ReloadableEngine(Protocol):
    """An engine serving a bundle directory that can swap in a bundle already read from it (both engines)."""

    @property
    def bundle_dir(self) -> Path: ...

    @property
    def revision(self) -> str: ...

    def reload(self, bundle: PolicyBundle | None = None) -> str: ...


@dataclass(frozen=True, slots=True)
class FileState:
    mtime_ns: int
    size: int
    inode: int
    digest: bytes | None = None
    """The content's sha256 while the file is recent (see `snapshot`), else None."""

    def same_as(self, other: FileState) -> bool:
        if (self.mtime_ns, self.size, self.inode) != (other.mtime_ns, other.size, other.inode):
            return False
        return self.digest is None or other.digest is None or self.digest == other.digest


Snapshot = dict[str, FileState]
"""Bundle-relative POSIX name → state, for every file the bundle serves or tests."""


def bundle_files(directory: Path) -> list[Path]:
    """`rego/**/*.rego` (tests included) and `data/*.json`: every file that can change a bundle or its tests."""
    return sorted([*(directory / "rego").rglob("*.rego"), *(directory / "data").glob("*.json")])


def snapshot(directory: Path, *, recent_ns: int) -> Snapshot:
    """The state of each bundle file; files modified within `recent_ns` also carry their content digest.

    Two same-size writes within one filesystem timestamp tick (milliseconds) leave mtime and size unchanged;
    hashing recent files, as git does for racily clean index entries, still tells them apart.
    """
    now = time.time_ns()
    states: Snapshot = {}
    for path in bundle_files(directory):
        try:
            st = path.stat()
            digest = hashlib.sha256(path.read_bytes()).digest() if now - st.st_mtime_ns < recent_ns else None
        except FileNotFoundError:  # deleted between listing and reading: absent from this snapshot
            continue
        states[path.relative_to(directory).as_posix()] = FileState(st.st_mtime_ns, st.st_size, st.st_ino, digest)
    return states


def same_snapshot(a: Snapshot, b: Snapshot) -> bool:
    return a.keys() == b.keys() and all(a[name].same_as(b[name]) for name in a)


@dataclass(frozen=True, slots=True)
class ReloadOutcome:
    """One reload attempt, as `/healthz` shows it."""

    revision: str
    """The revision serving after the attempt: the new one, or on a rejection the last good one."""
    ok: bool
    error: str
    """Why the bundle was rejected, on one line (`rego/x.rego:17:1: …` where the engine names the place)."""
    at: str
    """When, ISO 8601 UTC."""


class _Moved(Exception):
    """The bundle changed between the reads of its served and its test files."""


@dataclass(frozen=True, slots=True)
class Candidate:
    """A changed bundle as read: valid and tested (`bundle`), or rejected (`error`)."""

    snapshot: Snapshot
    """The files' state before they were read; a change made during the read shows at the next poll."""
    bundle: PolicyBundle | None
    error: str = ""


def examine(directory: Path, seen: Snapshot, *, recent_ns: int) -> Candidate | None:
    """Blocking: None when no file changed since `seen`, else the bundle read and tested.

    Touches no engine, so it may run on any thread (regorus engines must be dropped on the thread that
    built them, and a worker thread can hold the last reference to whatever it was handed).
    """
    current = snapshot(directory, recent_ns=recent_ns)
    if same_snapshot(current, seen):
        return None
    candidate = _read(directory, current)
    for _ in range(_ATTEMPTS - 1):
        if candidate.bundle is not None:
            break
        after = snapshot(directory, recent_ns=recent_ns)
        if same_snapshot(after, current):
            break  # the files held still while read: the rejection is real
        current = after
        candidate = _read(directory, current)
    return candidate


def _read(directory: Path, current: Snapshot) -> Candidate:
    try:
        with_tests = load_bundle(directory, include_tests=True)
        served = load_bundle(directory)
        untested = {m.name: m.source for m in with_tests.modules if not m.name.endswith(TEST_SUFFIX)}
        if untested != {m.name: m.source for m in served.modules} or with_tests.data_json != served.data_json:
            raise _Moved
        failed = [r for r in run_bundle_tests(with_tests) if not r.passed]
    except PolicyBundleInvalid as exc:
        return Candidate(current, None, one_line(exc))
    except _Moved:
        return Candidate(current, None, "the bundle changed while it was being read")
    if not failed:
        return Candidate(current, served)
    named = "; ".join(f"{r.name}: {r.error}" if r.error else r.name for r in failed[:_NAMED_FAILURES])
    more = f" and {len(failed) - _NAMED_FAILURES} more" if len(failed) > _NAMED_FAILURES else ""
    return Candidate(current, None, f"{len(failed)} Rego test(s) failed: {named}{more}")


class BundleWatcher:
    """Reloads `engine` when the files of its bundle directory change and the new bundle is valid.

    Valid means: it loads, and every Rego unit test (`*_test.rego`) passes against exactly the files that
    will serve. `label` names the engine in logs (`policy`, `shadow policy`).
    """

    def __init__(self, engine: ReloadableEngine, *, interval_s: float = 0.25, label: str = "policy") -> None:
        self._engine = engine
        self._interval_s = interval_s
        self._label = label
        # Longer than a poll interval plus a timestamp tick, so a same-tick rewrite is still recent when polled.
        self._recent_ns = int(max(2.0, 4 * interval_s) * 1e9)
        self._seen = snapshot(engine.bundle_dir, recent_ns=self._recent_ns)
        self._last: ReloadOutcome | None = None

    @property
    def engine(self) -> ReloadableEngine:
        return self._engine

    @property
    def last_reload(self) -> ReloadOutcome | None:
        """The latest attempt, or None when the bundle has not changed since start."""
        return self._last

    async def run(self) -> None:
        """Poll until cancelled: reading and testing on a worker thread, the swap (a few ms) on this one."""
        examine_changes = functools.partial(examine, self._engine.bundle_dir, recent_ns=self._recent_ns)
        while True:
            try:
                candidate = await anyio.to_thread.run_sync(examine_changes, self._seen)
                if candidate is not None:
                    self.apply(candidate)
            except Exception:
                # The loop outlives any one poll: a bug here must not stop hot reload or the gateway.
                logger.exception("%s bundle watcher failed on %s", self._label, self._engine.bundle_dir)
            await anyio.sleep(self._interval_s)

    def check(self) -> ReloadOutcome | None:
        """One blocking poll on this thread: `examine`, then `apply`; None when nothing changed."""
        candidate = examine(self._engine.bundle_dir, self._seen, recent_ns=self._recent_ns)
        return self.apply(candidate) if candidate is not None else None

    def apply(self, candidate: Candidate) -> ReloadOutcome:
        """Serve `candidate`'s bundle, or log its rejection; the outcome becomes `last_reload`."""
        old = self._engine.revision
        error = candidate.error
        if candidate.bundle is not None and candidate.bundle.revision != old:
            try:
                self._engine.reload(candidate.bundle)
                logger.info("%s bundle reloaded: revision %s → %s", self._label, old, candidate.bundle.revision)
            except PolicyBundleInvalid as exc:
                error = one_line(exc)
        elif candidate.bundle is not None:
            logger.info("%s bundle: tests changed, revision %s unchanged", self._label, old)
        if error:
            logger.error(
                "%s bundle %s rejected; revision %s keeps serving: %s",
                self._label,
                self._engine.bundle_dir,
                old,
                error,
            )
        self._seen = candidate.snapshot
        self._last = ReloadOutcome(self._engine.revision, ok=not error, error=error, at=_now())
        return self._last


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
